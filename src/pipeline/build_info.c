/* What this binary is: version, git commit, build type, CUDA architectures, BLAS
 * (`virnucpro version`, run.json). */
#include "backend/backend.h"
#include "virnucpro.h"
#include "virnucpro/pipeline.h"
#include "vnp_build_info.h"

void vnp_build_info_get(vnp_build_info *b)
{
    b->version = VNP_VERSION_STRING;
    b->git_commit = VNP_GIT_COMMIT;
    b->build_type = VNP_BUILD_TYPE;
    b->cuda_archs = VNP_CUDA_ARCHS;
    b->blas = vnp_backend_cpu_blas();
}
