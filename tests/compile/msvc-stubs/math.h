/* tests/compile/msvc-stubs/math.h - a stand-in for the MSVC C library header
   in tools/check-all.sh's freestanding msvc-target syntax check: only what
   attn.h's implementation calls, so a new dependency shows up as an error. */
#pragma once
double sqrt(double); double exp(double); double log(double); double erf(double);
double erfc(double); double cos(double); double sin(double); double tanh(double);
double fabs(double); double pow(double, double); double floor(double); double ceil(double);
float sqrtf(float); float expf(float); float logf(float); float erff(float); float erfcf(float);
float cosf(float); float sinf(float); float tanhf(float); float fabsf(float);
float powf(float, float); float floorf(float); float ceilf(float); float fmaxf(float, float);
float fminf(float, float); float log1pf(float); float expm1f(float); float roundf(float);
float fmaf(float, float, float); double fma(double, double, double);
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define HUGE_VALF __builtin_huge_valf()
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
