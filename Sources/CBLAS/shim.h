#ifndef RETORT_CBLAS_SHIM_H
#define RETORT_CBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
