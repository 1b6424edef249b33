/* Named points of predict's output protocol (journal writes, renames, removals,
 * flushes) where a test can kill the process, to prove that any interruption leaves
 * a state that --resume completes to the same bytes. VIRNUCPRO_DEBUG_KILL_AT=N sends
 * SIGKILL to the process at the N-th point reached (1-based);
 * VIRNUCPRO_DEBUG_KILL_LOG=FILE appends each point's number and name to FILE (so a
 * test knows how many there are). Off: one getenv per process, then a compare.
 * (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_CRASH_POINT_H
#define VNP_PIPELINE_CRASH_POINT_H

void vnp_crash_point(const char *what);

#endif
