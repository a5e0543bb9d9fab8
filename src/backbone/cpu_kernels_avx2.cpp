// The fused loops built for one instruction set (see cpu_kernels_impl.h).
#define STEPVERIFY_KERNEL_ISA avx2
#include "backbone/cpu_kernels_impl.h"
