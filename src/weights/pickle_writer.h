/* A pickle (protocol 2) emitter: the opcodes torch.save writes, appended to a growable
 * buffer. The caller composes the object tree; errors (out of memory) stick and are
 * reported once by vnp_pkw_ok. (Internal to src/weights and its users.) */
#ifndef VNP_WEIGHTS_PICKLE_WRITER_H
#define VNP_WEIGHTS_PICKLE_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct vnp_pkw {
    unsigned char *b;
    size_t n, cap;
    int failed;
} vnp_pkw;

void vnp_pkw_free(vnp_pkw *w);
int vnp_pkw_ok(const vnp_pkw *w);
void vnp_pkw_proto(vnp_pkw *w);                                   /* PROTO 2 */
void vnp_pkw_stop(vnp_pkw *w);                                    /* STOP */
void vnp_pkw_global(vnp_pkw *w, const char *module, const char *name); /* GLOBAL */
void vnp_pkw_str(vnp_pkw *w, const char *s);                      /* BINUNICODE */
void vnp_pkw_int(vnp_pkw *w, int64_t v);                          /* BININT* / LONG1 */
void vnp_pkw_float(vnp_pkw *w, double v);                         /* BINFLOAT */
void vnp_pkw_bool(vnp_pkw *w, int v);                             /* NEWTRUE / NEWFALSE */
void vnp_pkw_none(vnp_pkw *w);
void vnp_pkw_op(vnp_pkw *w, unsigned char op);                    /* any argument-less opcode */

/* Opcodes without arguments. */
#define VNP_PK_MARK '('
#define VNP_PK_EMPTY_TUPLE ')'
#define VNP_PK_EMPTY_LIST ']'
#define VNP_PK_EMPTY_DICT '}'
#define VNP_PK_TUPLE 't'
#define VNP_PK_TUPLE1 '\x85'
#define VNP_PK_TUPLE2 '\x86'
#define VNP_PK_TUPLE3 '\x87'
#define VNP_PK_REDUCE 'R'
#define VNP_PK_NEWOBJ '\x81'
#define VNP_PK_BUILD 'b'
#define VNP_PK_SETITEMS 'u'
#define VNP_PK_BINPERSID 'Q'

#endif
