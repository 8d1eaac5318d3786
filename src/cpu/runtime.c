/* The C library's runtime: it replays the call sequences `diffc build --target cpu` emits as
   tables (`rt_event`), calling the compiled kernels and the caller's denoiser. Each library's
   `<stem>_runtime.c` is this file after `#include "<stem>.h"`, followed by its tables and
   entry points; tests/aot.rs also compiles it on its own against a generated header. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef void (*rt_kernel)(void *const *, const float *, const uint64_t *, uint64_t, uint64_t,
                          uint64_t, uint64_t, uint64_t, uint32_t *);

enum { RT_FIELD, RT_SLOT, RT_PREV, RT_NET, RT_NODE, RT_INPUT, RT_OUTPUT, RT_ROW };
enum { RT_LAUNCH, RT_CALL, RT_COPY, RT_REPEAT };

/* A buffer: where it lives, and (batch?) × the sizes of `dim` × `width` values. `out`: 0 an
   input, 1 an output written to a fresh array that then takes its place, 2 an output written
   straight into the caller's array. */
typedef struct {
  uint8_t kind, bytes, batch, out;
  uint32_t index, width;
  uint8_t ndim, dim[6];
} rt_buf;

typedef struct rt_event {
  uint8_t op, step_is_k;
  uint32_t net, call; /* repeat: `call` runs */
  uint32_t nbufs, nin; /* launch: buffers; call: inputs then outputs; copy: to, from; repeat: events */
  const rt_buf *bufs;
  rt_kernel fn;
  const uint32_t *slots;
  uint32_t nslots;
  const uint8_t *kdims; /* the process dimension of each kernel size */
  uint32_t nkdims;
  const uint8_t *domain; /* process dimensions of the kernel's range */
  uint32_t ndomain;
  uint64_t step, offset;
  const int8_t *sym; /* call: per output, the dimension of a symmetric field, or -1 */
  const struct rt_event *body; /* repeat: the loop's events; run j adds j * 2^40 to offsets */
} rt_event;

typedef struct {
  uint64_t batch, seed;
  const uint64_t *dims;
  uint32_t k;
  const float *row;
  void *const *fields;
  const void *const *inputs;
  void *const *outputs;
  void **slots, **prevs, **nets, **nodes;
  diffc_denoise_fn denoise;
  void *user;
  uint64_t offset; /* added to every launch's index offset (the run of an inner loop) */
  /* A call with one time per sample runs samples b0 … b1−1 (a run of equal times) at a time:
     launches cover their elements only, and results land in their part of the caller's arrays
     (a value that is one per call is written once per sample). */
  int runs;
  uint64_t b0, b1;
} rt_ctx;
/* Values per sample of a buffer. */
static uint64_t rt_per(const rt_ctx *c, const rt_buf *b) {
  uint64_t n = 1;
  for (uint32_t i = 0; i < b->ndim; i++) n *= c->dims[b->dim[i]];
  return n * b->width;
}

static uint64_t rt_count(const rt_ctx *c, const rt_buf *b) {
  uint64_t n = b->batch ? c->batch : 1;
  for (uint32_t i = 0; i < b->ndim; i++) n *= c->dims[b->dim[i]];
  return n * b->width;
}

static void **rt_scratch(rt_ctx *c, const rt_buf *b) {
  switch (b->kind) {
  case RT_SLOT: return &c->slots[b->index];
  case RT_PREV: return &c->prevs[b->index];
  case RT_NET: return &c->nets[b->index];
  case RT_NODE: return &c->nodes[b->index];
  default: return NULL;
  }
}

static void *rt_ptr(rt_ctx *c, const rt_buf *b) {
  switch (b->kind) {
  case RT_FIELD: return c->fields ? c->fields[b->index] : NULL;
  case RT_INPUT: return c->inputs ? (void *)c->inputs[b->index] : NULL;
  case RT_OUTPUT: return c->outputs ? c->outputs[b->index] : NULL;
  case RT_ROW: return c->row ? (void *)(c->row + b->index) : NULL;
  default: return *rt_scratch(c, b);
  }
}

static void *rt_alloc(uint64_t n, uint8_t bytes) { return calloc(n ? n : 1, bytes); }

/* Give a freshly written array its place: scratch takes it over, caller arrays get a copy. */
static int rt_store(rt_ctx *c, const rt_buf *b, void *fresh) {
  void **s = rt_scratch(c, b);
  if (s) {
    free(*s);
    *s = fresh;
    return 0;
  }
  void *dst = rt_ptr(c, b);
  if (!dst) {
    free(fresh);
    return DIFFC_ERR_ARG;
  }
  if (c->runs && b->batch) {
    uint64_t per = rt_per(c, b) * b->bytes;
    memcpy((char *)dst + c->b0 * per, (char *)fresh + c->b0 * per, (c->b1 - c->b0) * per);
  } else {
    memcpy(dst, fresh, rt_count(c, b) * b->bytes);
  }
  free(fresh);
  return 0;
}

static int rt_launch(rt_ctx *c, const rt_event *e) {
  int rc = 0;
  uint64_t sizes[8] = {0};
  void **ptrs = calloc(e->nbufs ? e->nbufs : 1, sizeof(void *));
  float *coefs = malloc((e->nslots ? e->nslots : 1) * sizeof(float));
  if (!ptrs || !coefs) {
    rc = DIFFC_ERR_NOMEM;
    goto done;
  }
  for (uint32_t j = 0; j < e->nbufs; j++) {
    const rt_buf *b = &e->bufs[j];
    ptrs[j] = b->out == 1 ? rt_alloc(rt_count(c, b), b->bytes) : rt_ptr(c, b);
    if (!ptrs[j]) {
      rc = b->out == 1 ? DIFFC_ERR_NOMEM : (b->kind == RT_ROW || (b->kind >= RT_SLOT && b->kind <= RT_NODE) ? DIFFC_ERR_STATE : DIFFC_ERR_ARG);
      goto done;
    }
  }
  for (uint32_t i = 0; i < e->nslots; i++) coefs[i] = c->row[e->slots[i]];
  for (uint32_t i = 0; i < e->nkdims; i++) sizes[i] = c->dims[e->kdims[i]];
  uint64_t per = 1;
  for (uint32_t i = 0; i < e->ndomain; i++) per *= c->dims[e->domain[i]];
  uint64_t start = c->runs ? c->b0 * per : 0, end = c->runs ? c->b1 * per : c->batch * per;
  uint32_t status = 0;
  e->fn(ptrs, coefs, sizes, start, end, c->seed, e->step_is_k ? c->k : e->step, e->offset + c->offset, &status);
  rc = (int)status;
  for (uint32_t j = 0; j < e->nbufs; j++) {
    if (e->bufs[j].out != 1) continue;
    int r = rt_store(c, &e->bufs[j], ptrs[j]);
    ptrs[j] = NULL;
    rc |= r;
  }
done:
  if (ptrs)
    for (uint32_t j = 0; j < e->nbufs; j++)
      if (e->bufs[j].out == 1) free(ptrs[j]);
  free(ptrs);
  free(coefs);
  return rc;
}

/* Mirror the upper triangle of [batch, n, n, width] onto the lower one; empty the diagonal. */
static void rt_symmetrize(float *x, uint64_t batch, uint64_t n, uint32_t w) {
  for (uint64_t b = 0; b < batch; b++)
    for (uint64_t i = 0; i < n; i++)
      for (uint64_t j = 0; j <= i; j++)
        for (uint32_t q = 0; q < w; q++)
          x[((b * n + i) * n + j) * w + q] = i == j ? 0.0f : x[((b * n + j) * n + i) * w + q];
}

static int rt_call(rt_ctx *c, const rt_event *e) {
  const void *in[32];
  void *out[32];
  if (!c->denoise) return DIFFC_ERR_ARG;
  for (uint32_t i = 0; i < e->nin; i++) {
    in[i] = rt_ptr(c, &e->bufs[i]);
    if (!in[i]) return e->bufs[i].kind == RT_FIELD ? DIFFC_ERR_ARG : DIFFC_ERR_STATE;
  }
  for (uint32_t j = 0; j + e->nin < e->nbufs; j++) {
    const rt_buf *b = &e->bufs[e->nin + j];
    void **s = rt_scratch(c, b);
    if (!*s) *s = rt_alloc(rt_count(c, b), b->bytes);
    if (!*s) return DIFFC_ERR_NOMEM;
    out[j] = *s;
  }
  if (c->denoise(c->user, e->net, e->call, c->batch, c->dims, in, out)) return DIFFC_ERR_DENOISE;
  for (uint32_t j = 0; j + e->nin < e->nbufs; j++)
    if (e->sym[j] >= 0)
      rt_symmetrize((float *)out[j], c->batch, c->dims[e->sym[j]], e->bufs[e->nin + j].width);
  return 0;
}

static int rt_copy(rt_ctx *c, const rt_event *e) {
  const rt_buf *to = &e->bufs[0], *from = &e->bufs[1];
  const void *src = rt_ptr(c, from);
  if (!src) return from->kind == RT_FIELD || from->kind == RT_INPUT ? DIFFC_ERR_ARG : DIFFC_ERR_STATE;
  if (c->runs && !rt_scratch(c, to)) {
    /* Samples b0 … b1−1 of the caller's array, from the same samples or from a host value. */
    char *dst = rt_ptr(c, to);
    if (!dst) return DIFFC_ERR_ARG;
    uint64_t per = rt_per(c, to), m = from->batch ? rt_per(c, from) : rt_count(c, from);
    for (uint64_t b = c->b0; b < c->b1; b++) {
      const char *s = (const char *)src + (from->batch ? b * m * from->bytes : 0);
      for (uint64_t i = 0; i < per; i += m)
        memcpy(dst + (b * per + i) * to->bytes, s, (per - i < m ? per - i : m) * to->bytes);
    }
    return 0;
  }
  uint64_t n = rt_count(c, to);
  void *fresh = rt_alloc(n, to->bytes);
  if (!fresh) return DIFFC_ERR_NOMEM;
  /* A host value (one per call) fills every element of a caller's array. */
  uint64_t m = rt_count(c, from);
  for (uint64_t i = 0; i < n; i += m) memcpy((char *)fresh + i * to->bytes, src, (n - i < m ? n - i : m) * to->bytes);
  return rt_store(c, to, fresh);
}

static int rt_run(rt_ctx *c, const rt_event *ev, uint32_t n);

static int rt_repeat(rt_ctx *c, const rt_event *e) {
  uint64_t saved = c->offset;
  int rc = 0;
  for (uint32_t j = 0; j < e->call && !rc; j++) {
    c->offset = saved + ((uint64_t)j << 40);
    rc = rt_run(c, e->body, e->nbufs);
  }
  c->offset = saved;
  return rc;
}

/* A time given as f32, checked as `diffc eval` checks it: within lo … hi (an f32 that rounds
   to an end is that end), and a whole number in discrete time. */
static int rt_time(float x, double lo, double hi, int discrete, double *out) {
  double v = (double)x;
  if (x == (float)hi) v = hi;
  if (x == (float)lo) v = lo;
  if (!isfinite(v) || v < lo || v > hi) return 1;
  if (discrete && v - trunc(v) != 0.0) return 1;
  *out = v;
  return 0;
}

/* Whether a symmetric field's value, [batch, n, n] entries of w values each, breaks the field's
   rule in some sample: a value on the diagonal that is not 0, or an entry that differs from its
   mirror (`diffc eval` refuses such an input). A NULL array is left to the call's own check. */
#define RT_SYM(name, T)                                                                   \
  static int name(const T *x, uint64_t batch, uint64_t n, uint64_t w) {                   \
    if (!x) return 0;                                                                     \
    for (uint64_t b = 0; b < batch; b++)                                                  \
      for (uint64_t i = 0; i < n; i++) {                                                  \
        for (uint64_t q = 0; q < w; q++)                                                  \
          if (x[((b * n + i) * n + i) * w + q] != 0) return 1;                            \
        for (uint64_t j = i + 1; j < n; j++)                                              \
          for (uint64_t q = 0; q < w; q++)                                                \
            if (x[((b * n + i) * n + j) * w + q] != x[((b * n + j) * n + i) * w + q]) return 1; \
      }                                                                                   \
    return 0;                                                                             \
  }
RT_SYM(rt_sym_f32, float)
RT_SYM(rt_sym_u32, uint32_t)
RT_SYM(rt_sym_u8, uint8_t)

/* Process params given as f32 arrays: finite, and on the simplex where `simplex`. */
static int rt_param(const float *x, uint32_t n, int simplex) {
  double sum = -0.0;
  for (uint32_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) return 1;
    if (simplex && x[i] < 0.0f) return 1;
    sum += (double)x[i];
  }
  return simplex && fabs(sum - 1.0) >= 1e-6;
}

static int rt_run(rt_ctx *c, const rt_event *ev, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    const rt_event *e = &ev[i];
    int rc = e->op == RT_LAUNCH ? rt_launch(c, e)
             : e->op == RT_CALL ? rt_call(c, e)
             : e->op == RT_COPY ? rt_copy(c, e)
                                : rt_repeat(c, e);
    if (rc) return rc;
  }
  return 0;
}
