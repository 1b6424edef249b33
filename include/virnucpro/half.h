/* IEEE half and bfloat16 <-> float conversion (round to nearest even). */
#ifndef VIRNUCPRO_HALF_H
#define VIRNUCPRO_HALF_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
float vnp_f16_to_f32(uint16_t h);
uint16_t vnp_f32_to_f16(float f);
float vnp_bf16_to_f32(uint16_t h);
uint16_t vnp_f32_to_bf16(float f);
#ifdef __cplusplus
}
#endif
#endif
