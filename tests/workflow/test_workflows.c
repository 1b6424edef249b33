/* The workflows, run for real on the golden set with 3 shards, each compared byte for byte
 * with one predict run (prediction_results.txt, prediction_results_highestscore.csv,
 * sequences.tsv, chunks.tsv, viral_regions.bed, viral.fna, report.html):
 *  1. workflow/Snakefile with Snakemake locally;
 *  2. the same after every predict job was stopped half way (a time-out): the re-run
 *     resumes each shard (--resume) instead of starting over;
 *  3. workflow/slurm/submit.sh on a real single-node Slurm (tests/workflow/slurm_cluster.sh
 *     starts munged, slurmctld and slurmd on localhost with 2 CPUs, and stops them at the
 *     end): the sbatch array of 3 predict tasks and the merge job (--dependency=afterok);
 *  4. workflow/Snakefile through the Slurm profile (workflow/slurm/profile).
 * Prerequisites: snakemake (1, 2), and root, slurm-wlm and munge (3, 4), all installed by
 * scripts/install-deps.sh --test. Without them the tests are skipped, unless CI is set
 * (CI=true, as CI services set it): then a missing prerequisite fails. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define G "golden/"
#define OPTS "-l 500 --device cpu"

static const char *const FILES[] = {
    "prediction_results.txt", "prediction_results_highestscore.csv", "sequences.tsv",
    "chunks.tsv", "viral_regions.bed", "viral.fna", "report.html"};
#define NFILES (sizeof FILES / sizeof FILES[0])
static char src[4096], models[3][4096], input[4096], cluster[4096];
static int have_snakemake, have_slurm, cluster_up;

static void assert_has(const char *text, const char *s)
{
    if (!strstr(text, s))
        fail_msg("expected \"%s\" in:\n%.6000s", s, text);
}

static int ci(void)
{
    const char *v = getenv("CI");
    return v && *v && strcmp(v, "false") && strcmp(v, "0");
}

static int have(const char *prog)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return vnp_test_run(cmd, NULL, NULL) == 0;
}

/* Skips the test when a prerequisite is missing, fails it under CI. */
static void need(int ok, const char *what)
{
    if (ok)
        return;
    if (ci())
        fail_msg("%s; CI is set, so this is a failure (scripts/install-deps.sh --test installs "
                 "snakemake, slurm-wlm and munge; the Slurm tests run as root)",
                 what);
    print_message("skipped: %s (CI is not set)\n", what);
    skip();
}

static char *must(const char *cmd)
{
    char *out = NULL, *err = NULL;
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("`%.2000s`: exit %d\nstdout:\n%.4000s\nstderr:\n%.4000s", cmd, rc, out, err);
    free(err);
    return out;
}

static const char *tmp(const char *dir, const char *name)
{
    return vnp_test_tmp_in(dir, name);
}

static void assert_same(const char *merged)
{
    for (size_t i = 0; i < NFILES; i++)
        vnp_test_assert_files_equal(tmp(merged, FILES[i]), tmp("ref", FILES[i]));
}

static int setup(void **state)
{
    (void)state;
    snprintf(src, sizeof src, "%s", getenv("VNP_SOURCE_DIR") ? getenv("VNP_SOURCE_DIR") : ".");
    snprintf(models[0], sizeof models[0], "%s", vnp_test_fixture(G "esm2"));
    snprintf(models[1], sizeof models[1], "%s", vnp_test_fixture(G "dnabert_s"));
    snprintf(models[2], sizeof models[2], "%s", vnp_test_fixture(G "classifier.pth"));
    snprintf(input, sizeof input, "%s", vnp_test_fixture(G "input.fa"));
    snprintf(cluster, sizeof cluster, "%s", vnp_test_tmp("slurm"));
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    setenv("VIRNUCPRO", vnp_test_cli(), 1); /* the Slurm scripts' binary */
    have_snakemake = have("snakemake");
    have_slurm = geteuid() == 0 && have("sbatch") && have("slurmctld") && have("slurmd") &&
                 have("munged");
    /* the reference: one run over the whole input */
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' predict -q " OPTS " -t 1 --esm '%s' --dnabert '%s' --classifier '%s' "
             "-o '%s' '%s'",
             vnp_test_cli(), models[0], models[1], models[2], vnp_test_tmp("ref"), input);
    free(must(cmd));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (cluster_up) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "bash '%s/tests/workflow/slurm_cluster.sh' stop '%s'", src,
                 cluster);
        vnp_test_run(cmd, NULL, NULL);
        cluster_up = 0;
    }
    return 0;
}

/* The Slurm cluster, started once for the tests that need it. */
static void start_cluster(void)
{
    need(have_slurm, geteuid() == 0 ? "slurm-wlm or munge is not installed"
                                    : "the Slurm tests need root (slurmd runs the jobs)");
    if (cluster_up)
        return;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bash '%s/tests/workflow/slurm_cluster.sh' start '%s'", src,
             cluster);
    char *out = must(cmd);
    cluster_up = 1;
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/slurm.conf", cluster);
    assert_has(out, conf);
    free(out);
    setenv("SLURM_CONF", conf, 1);
    char *info = must("sinfo -h -o '%T %c'");
    assert_string_equal(info, "idle 2\n");
    free(info);
}

/* snakemake with the workflow and the golden models, 3 shards, into tmp/outdir. CI=true
 * for snakemake alone (whatever this test's own CI says): Snakemake 7 then polls its
 * cluster jobs every second instead of every 10 s (its executors' sleep(); nothing else of
 * it reads CI), about 20 s less waiting in the Slurm-profile test. */
static int snakemake(const char *env, const char *outdir, const char *profile, const char *more,
                     char **out)
{
    char cmd[16384], prof[4200] = "--cores 2";
    if (profile)
        snprintf(prof, sizeof prof, "--profile '%s'", profile);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && CI=true %s snakemake -s '%s/workflow/Snakefile' %s %s --config input='%s' "
             "outdir='%s' shards=3 chunk=500 esm='%s' dnabert='%s' classifier='%s' device=cpu "
             "threads=1 mem_mb=500 runtime=10 'extra=--window 4' "
             "virnucpro='%s' 2>&1",
             vnp_test_tmp("."), env, src, prof, more, input, vnp_test_tmp(outdir), models[0],
             models[1], models[2], vnp_test_cli());
    return vnp_test_run(cmd, out, NULL);
}

/* 1. Snakemake, locally */
static void test_snakemake_local(void **state)
{
    (void)state;
    need(have_snakemake, "snakemake is not installed");
    char *log = NULL;
    int rc = snakemake("", "sm_local", NULL, "", &log);
    if (rc)
        fail_msg("snakemake: exit %d:\n%.6000s", rc, log);
    assert_has(log, "8 of 8 steps (100%) done");
    free(log);
    assert_same("sm_local/merged");
    /* a second run has nothing to do */
    rc = snakemake("", "sm_local", NULL, "", &log);
    assert_int_equal(rc, 0);
    assert_has(log, "Nothing to be done");
    free(log);
}

/* 2. every predict job stopped after its first window (as by a time-out), then re-run */
static void test_snakemake_rerun_resumes(void **state)
{
    (void)state;
    need(have_snakemake, "snakemake is not installed");
    char *log = NULL;
    int rc = snakemake("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=1", "sm_resume", NULL, "--keep-going",
                       &log);
    assert_int_not_equal(rc, 0);
    free(log);
    for (int i = 1; i <= 3; i++) { /* each shard kept its journal and partial rows */
        char rel[128];
        snprintf(rel, sizeof rel, "sm_resume/shards/%d/predict.journal", i);
        assert_int_equal(access(vnp_test_tmp(rel), F_OK), 0);
    }
    rc = snakemake("", "sm_resume", NULL, "", &log);
    if (rc)
        fail_msg("snakemake re-run: exit %d:\n%.6000s", rc, log);
    free(log);
    for (int i = 1; i <= 3; i++) { /* resumed, not started over: the rows of the first
                                     * window were kept (the log is the re-run's) */
        char rel[128];
        snprintf(rel, sizeof rel, "sm_resume/logs/predict_%d.log", i);
        char *plog = vnp_test_read_file(vnp_test_tmp(rel), NULL);
        assert_non_null(plog);
        assert_null(strstr(plog, "starting from the beginning"));
        assert_null(strstr(plog, "starting over"));
        assert_null(strstr(plog, "stopped after"));
        free(plog);
    }
    assert_same("sm_resume/merged");
}

/* Waits until Slurm has no job left (squeue empty); fails after `limit` seconds. */
static void wait_jobs(double limit)
{
    time_t t0 = time(NULL);
    for (;;) {
        char *q = must("squeue -h -o '%i %T'");
        int empty = !*q;
        if (!empty && difftime(time(NULL), t0) > limit)
            fail_msg("Slurm jobs still queued after %.0f s:\n%s", limit, q);
        free(q);
        if (empty)
            return;
        usleep(300 * 1000);
    }
}

/* 3. the sbatch array and the merge job */
static void test_slurm_array(void **state)
{
    (void)state;
    start_cluster();
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "bash '%s/workflow/slurm/submit.sh' 3 '%s' '%s' " OPTS
             " --esm '%s' --dnabert '%s' --classifier '%s'",
             src, input, vnp_test_tmp("sl"), models[0], models[1], models[2]);
    char *out = must(cmd);
    assert_has(out, "predict array job ");
    assert_has(out, "(tasks 1-3), merge job ");
    /* the merge job waits for the array */
    long array = 0, merge = 0;
    assert_int_equal(sscanf(out, "predict array job %ld (tasks 1-3), merge job %ld", &array,
                            &merge),
                     2);
    free(out);
    snprintf(cmd, sizeof cmd, "scontrol show job %ld", merge);
    out = must(cmd);
    char dep[64];
    snprintf(dep, sizeof dep, "afterok:%ld", array);
    if (!strstr(out, "JobState=COMPLETED"))
        assert_has(out, dep);
    free(out);
    wait_jobs(180);
    const long ids[2] = {array, merge};
    for (int k = 0; k < 2; k++) { /* 3 tasks, 1 merge job, all completed */
        snprintf(cmd, sizeof cmd, "scontrol show job %ld | grep -c 'JobState=COMPLETED'", ids[k]);
        out = must(cmd);
        assert_string_equal(out, k == 0 ? "3\n" : "1\n");
        free(out);
    }
    assert_same("sl/merged");
}

/* 4. Snakemake through the Slurm profile */
static void test_snakemake_slurm(void **state)
{
    (void)state;
    need(have_snakemake, "snakemake is not installed");
    start_cluster();
    char prof[4200], *log = NULL;
    snprintf(prof, sizeof prof, "%s/workflow/slurm/profile", src);
    int rc = snakemake("", "sm_slurm", prof, "", &log);
    if (rc)
        fail_msg("snakemake --profile slurm: exit %d:\n%.6000s", rc, log);
    assert_has(log, "8 of 8 steps (100%) done");
    /* the jobs went through sbatch */
    assert_has(log, "Submitted job");
    free(log);
    wait_jobs(60);
    assert_same("sm_slurm/merged");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snakemake_local),
        cmocka_unit_test(test_snakemake_rerun_resumes),
        cmocka_unit_test(test_slurm_array),
        cmocka_unit_test(test_snakemake_slurm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
