/* CUDA device discovery. The kernels of the CUDA backend live beside this file. */
#include <cuda_runtime.h>

#include "virnucpro/error.h"

extern "C" int vnp_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}
