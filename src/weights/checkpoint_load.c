/* Picks the checkpoint reader from the file's first bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "virnucpro/weights.h"

vnp_code vnp_checkpoint_load(const char *path, vnp_tensor_map **out, vnp_error *err)
{
    *out = NULL;
    size_t plen = strlen(path);
    if (plen > 11 && !strcmp(path + plen - 11, ".index.json"))
        return vnp_sharded_checkpoint_load(path, out, err);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return vnp_fail(err, VNP_EINVAL,
                        "%s is a directory; give the checkpoint file itself (model.safetensors, "
                        "pytorch_model.bin, a .pth or .pt, or a sharded model's .index.json)",
                        path);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        return vnp_fail(err, e == ENOENT ? VNP_ENOTFOUND : VNP_EIO, "%s: cannot open: %s", path,
                        strerror(e));
    }
    uint8_t head[9] = {0};
    size_t n = fread(head, 1, sizeof head, fp);
    long size = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    fclose(fp);
    if (n >= 4 && memcmp(head, "PK\3\4", 4) == 0)
        return vnp_torch_load(path, out, err);
    /* safetensors before the legacy pickle test: a header of 640 bytes (0x280) starts the
     * file with 0x80 0x02, a pickle's PROTO 2. A legacy checkpoint's 9th byte is inside its
     * magic number, and its first 8 bytes read as a length far past any file's end. */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | head[i];
    if (n == 9 && head[8] == '{' && size >= 8 && hl <= (uint64_t)size - 8)
        return vnp_safetensors_load(path, out, err);
    if (n >= 2 && head[0] == 0x80 && head[1] <= 5)
        return vnp_torch_load(path, out, err); /* legacy format: its own clear message */
    if (n == 9 && head[8] == '{')
        return vnp_safetensors_load(path, out, err); /* its header length is reported there */
    return vnp_fail(err, VNP_EFORMAT,
                    "%s: neither a safetensors file nor a PyTorch zip checkpoint; give "
                    "model.safetensors, pytorch_model.bin or a .pth/.pt saved by torch.save",
                    path);
}
