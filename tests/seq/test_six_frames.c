/* Six-frame translation and the ORF filter, as the original selects frames. */
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/seq.h"

typedef struct want_frame {
    const char *name, *protein, *nucleotide;
} want_frame;

static void check(const char *seq, const want_frame *want, int n)
{
    vnp_frames f;
    vnp_frames_init(&f);
    vnp_error err;
    assert_int_equal(vnp_six_frames(seq, strlen(seq), &f, &err), VNP_OK);
    if (f.n != n)
        fail_msg("%s: %d frames kept, want %d", seq, f.n, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(vnp_frame_name(f.frame[i].frame), want[i].name);
        assert_string_equal(f.frame[i].protein, want[i].protein);
        assert_int_equal(f.frame[i].protein_len, strlen(want[i].protein));
        assert_string_equal(f.frame[i].nucleotide, want[i].nucleotide);
        assert_int_equal(f.frame[i].nucleotide_len, strlen(want[i].nucleotide));
    }
    vnp_frames_free(&f);
}

static void test_frame_names(void **state)
{
    (void)state;
    const char *names[] = {"F1", "F2", "F3", "R1", "R2", "R3"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(vnp_frame_name(i), names[i]);
}

static void test_all_frames(void **state)
{
    (void)state;
    /* ATGAAA: F1 ATG AAA; F2 TGA is a stop (dropped); F3 GAA; reverse complement
     * TTTCAT: R1 TTT CAT, R2 TTC, R3 TCA. Nucleotides are strand[k-1 : k+3p]. */
    const want_frame w[] = {
        {"F1", "MK", "ATGAAA"}, {"F3", "E", "GAAA"},   {"R1", "FH", "TTTCAT"},
        {"R2", "F", "TTCA"},    {"R3", "S", "TCAT"},
    };
    check("ATGAAA", w, 5);
}

static void test_lowercase_and_ambiguous_codons(void **state)
{
    (void)state;
    /* Upper-cased first; a codon with N adds nothing, so F1's nucleotide slice
     * (3p+1 bases from the frame start) is shorter than the span it translated,
     * and F2/F3 (every codon has an N) have empty proteins and are dropped. The
     * reverse complement leaves N alone. */
    const want_frame w[] = {{"F1", "MK", "ATGNNNA"}, {"R1", "FH", "TTTNNNC"}};
    check("atgNnnaaa", w, 2);
}

static void test_iupac_not_complemented(void **state)
{
    (void)state;
    /* The reverse complement maps only ACGT, so R stays R: RAAATG -> CATTTR. */
    const want_frame w[] = {
        {"F1", "M", "RAAA"}, {"F2", "K", "AAAT"}, {"F3", "N", "AATG"},
        {"R1", "H", "CATT"}, {"R2", "I", "ATTT"}, {"R3", "F", "TTTR"},
    };
    check("RAAATG", w, 6);
}

static void test_stops_and_short(void **state)
{
    (void)state;
    check("", NULL, 0);
    check("AT", NULL, 0);
    check("NNNNNN", NULL, 0);         /* no codon translates: empty proteins are dropped */
    check("GCTTAACTAGCTAG", NULL, 0); /* a stop in every frame */
    /* F1 TAA TAA stops; F2 AAT (+ 2 bases left over) */
    const want_frame w[] = {{"F2", "N", "AATA"}, {"F3", "I", "ATAA"}, {"R1", "LL", "TTATTA"},
                            {"R2", "Y", "TATT"}, {"R3", "I", "ATTA"}};
    check("TAATAA", w, 5);
    const want_frame w2[] = {{"F2", "SS", "AGTAGTA"},   {"F3", "VV", "GTAGTAG"},
                             {"R1", "LLL", "CTACTACTA"}, {"R2", "YY", "TACTACT"},
                             {"R3", "TT", "ACTACTA"}};
    check("TAGTAGTAG", w2, 5);
}

static void test_reuse_across_sizes(void **state)
{
    (void)state;
    vnp_frames f;
    vnp_frames_init(&f);
    char big[901];
    for (int i = 0; i < 900; i++)
        big[i] = "GCT"[i % 3]; /* GCT repeated: F1 all Ala */
    big[900] = 0;
    assert_int_equal(vnp_six_frames(big, 900, &f, NULL), VNP_OK);
    assert_int_equal(f.frame[0].frame, 0);
    assert_int_equal(f.frame[0].protein_len, 300);
    for (int i = 0; i < 300; i++)
        assert_int_equal(f.frame[0].protein[i], 'A');
    assert_int_equal(f.frame[0].nucleotide_len, 900); /* 3p+1 clipped at the end */
    assert_int_equal(vnp_six_frames("ATGAAA", 6, &f, NULL), VNP_OK);
    assert_int_equal(f.n, 5);
    assert_string_equal(f.frame[0].protein, "MK");
    vnp_frames_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_names),
        cmocka_unit_test(test_all_frames),
        cmocka_unit_test(test_lowercase_and_ambiguous_codons),
        cmocka_unit_test(test_iupac_not_complemented),
        cmocka_unit_test(test_stops_and_short),
        cmocka_unit_test(test_reuse_across_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
