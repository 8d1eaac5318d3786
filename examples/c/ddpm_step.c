/* One DDPM ancestral step (specs/ddpm.diff, process ddpm_linear) from C, through the library
 * `diffc build` writes. Needs only libc and libm besides the library.
 *
 *   diffc build specs/ddpm.diff --target cpu -o build/ddpm
 *   cc -std=c99 -O2 -I build/ddpm examples/c/ddpm_step.c -L build/ddpm -lddpm \
 *      -Wl,-rpath,"$PWD/build/ddpm" -lm -o build/ddpm_step
 *   build/ddpm_step x.npy eps.npy out.npy K SEED
 *
 * x.npy and eps.npy are float32 arrays of shape [batch, d]: the state x at t = grid[K] and the
 * network's prediction eps_hat(x, t). out.npy receives x at s = grid[K + 1], with the noise of
 * step K drawn from SEED: the same values as
 *
 *   diffc eval specs/ddpm.diff --process ddpm_linear --sampler ancestral --entry step \
 *     --in x=x.npy --in eps_hat.x=eps.npy --set t=T --set s=S --set k=K --seed SEED
 *
 * with T = 1000 - K and S = T - 1 (the default grid runs 1000, 999, …, 0). */

#include "ddpm.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A float32 array read from a little-endian .npy file (C order, at most 8 axes). */
typedef struct {
  float *data;
  uint64_t shape[8];
  int ndim;
  uint64_t len;
} array;

static int fail(const char *what, const char *path) {
  fprintf(stderr, "ddpm_step: %s: %s\n", path, what);
  return 0;
}

/* Parse the header dict: only '<f4', C order, and a shape tuple are accepted. */
static int parse_header(const char *h, array *a, const char *path) {
  if (!strstr(h, "'descr': '<f4'")) return fail("only little-endian float32 ('<f4') arrays are supported", path);
  if (!strstr(h, "'fortran_order': False")) return fail("only C-order arrays are supported", path);
  const char *s = strstr(h, "'shape': (");
  if (!s) return fail("no shape in the header", path);
  s += strlen("'shape': (");
  a->ndim = 0;
  a->len = 1;
  while (*s && *s != ')') {
    while (*s == ' ' || *s == ',') s++;
    if (*s == ')') break;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || a->ndim == 8) return fail("a malformed shape", path);
    a->shape[a->ndim++] = n;
    a->len *= n;
    s = end;
  }
  return 1;
}

static int read_npy(const char *path, array *a) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(strerror(errno), path);
  unsigned char pre[10];
  int ok = 0;
  char *header = NULL;
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fail("not an .npy file", path);
    goto done;
  }
  uint32_t hlen;
  if (pre[6] == 1) {
    unsigned char b[2];
    if (fread(b, 1, 2, f) != 2) goto done;
    hlen = b[0] | (uint32_t)b[1] << 8;
  } else {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) goto done;
    hlen = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  }
  header = calloc(hlen + 1, 1);
  if (!header || fread(header, 1, hlen, f) != hlen) {
    fail("a truncated header", path);
    goto done;
  }
  if (!parse_header(header, a, path)) goto done;
  a->data = malloc((a->len ? a->len : 1) * sizeof(float));
  if (!a->data || fread(a->data, sizeof(float), a->len, f) != a->len) {
    fail("fewer values than its shape says", path);
    goto done;
  }
  ok = 1;
done:
  free(header);
  fclose(f);
  return ok;
}

/* Write a float32 array as .npy version 1.0, its header padded to 64 bytes as numpy does. */
static int write_npy(const char *path, const float *data, const uint64_t *shape, int ndim) {
  char dict[256];
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  uint64_t len = 1;
  for (int i = 0; i < ndim; i++) {
    n += snprintf(dict + n, sizeof dict - n, "%llu,%s", (unsigned long long)shape[i], i + 1 < ndim ? " " : "");
    len *= shape[i];
  }
  n += snprintf(dict + n, sizeof dict - n, "), }");
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) return fail(strerror(errno), path);
  uint16_t hlen = (uint16_t)(n + pad + 1);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, n, f) == (size_t)n;
  for (int i = 0; i < pad && ok; i++) ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF && fwrite(data, sizeof(float), len, f) == len;
  if (fclose(f) != 0) ok = 0;
  return ok ? 1 : fail("cannot write", path);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s X.npy EPS.npy OUT.npy K SEED\n", argv[0]);
    return 2;
  }
  array x = {0}, eps = {0};
  if (!read_npy(argv[1], &x) || !read_npy(argv[2], &eps)) return 2;
  if (x.ndim != 2 || eps.ndim != 2 || x.shape[0] != eps.shape[0] || x.shape[1] != eps.shape[1]) {
    fprintf(stderr, "ddpm_step: x and eps must both have shape [batch, d]\n");
    return 2;
  }
  char *end;
  unsigned long k = strtoul(argv[4], &end, 10);
  if (*end || k >= DIFFC_DDPM_LINEAR_ANCESTRAL_STEPS) {
    fprintf(stderr, "ddpm_step: K must be a step index from 0 to %d\n", DIFFC_DDPM_LINEAR_ANCESTRAL_STEPS - 1);
    return 2;
  }
  unsigned long long seed = strtoull(argv[5], &end, 10);
  if (*end) {
    fprintf(stderr, "ddpm_step: SEED must be a whole number\n");
    return 2;
  }
  uint64_t batch = x.shape[0], d = x.shape[1];
  float *out = malloc((x.len ? x.len : 1) * sizeof(float));
  if (!out) return 2;
  int status = diffc_ddpm_linear_ancestral_step(x.data, eps.data, out, batch, d, (uint32_t)k, seed);
  if (status != 0) {
    fprintf(stderr, "ddpm_step: the step failed with status %#x\n", status);
    return 1;
  }
  printf("step %lu: t = %g -> s = %g, batch %llu, d %llu\n", k, diffc_ddpm_linear_ancestral_grid[k],
         diffc_ddpm_linear_ancestral_grid[k + 1], (unsigned long long)batch, (unsigned long long)d);
  if (!write_npy(argv[3], out, x.shape, 2)) return 2;
  free(out);
  free(x.data);
  free(eps.data);
  return 0;
}
