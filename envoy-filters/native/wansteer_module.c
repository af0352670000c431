/*
 * A FEASIBILITY SPIKE of the session reporter as an Envoy dynamic module (issue 14): what the Lua
 * filter's quick path does per request, in C, to measure what a native filter costs Envoy.
 *
 * Per request: read the downstream connection's two addresses and the class's values (:authority,
 * :path, :method, :scheme and the allow-listed headers), look the connection up in this worker's
 * table and compare the class with the one it last had. A miss (a new connection, or a new class on
 * one) records the class; the real filter would report it to the agent there (not done here).
 *
 * Envoy runs a stream's filter on the worker thread that accepted its connection, so each worker
 * has a table of its own (thread-local): no locks.
 *
 * Config (the filter_config string): the allow-listed header names, comma-separated. The filter
 * named "empty" does nothing per request: the floor any module filter pays, for the benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy_module_abi.h"

#define EXPORT __attribute__((visibility("default")))

enum { MAX_HEADERS = 8, MAX_NAME = 64 };
enum { TABLE_SLOTS = 4096, PROBES = 4 }; /* per worker; a power of two */
enum { ENTRY_BYTES = 480 };              /* the key and the class, packed; longer ones are not kept */

struct config {
  bool empty; /* filter_name "empty": do nothing per request (the floor of a module filter) */
  size_t header_count;
  ws_bytes headers[MAX_HEADERS];
  char names[MAX_HEADERS][MAX_NAME];
};

/* One connection's last class: [key][value 0][value 1]..., lengths beside; a missing value has
 * length SIZE_MAX so that "absent" and "empty" differ. */
struct entry {
  uint64_t hash;
  uint64_t stamp;   /* when last used, for eviction */
  uint16_t key_len; /* 0: slot free */
  uint16_t count;
  size_t lens[4 + MAX_HEADERS];
  char bytes[ENTRY_BYTES];
};

struct table {
  uint64_t clock;
  uint64_t hits, misses;
  struct entry slots[TABLE_SLOTS];
};

/* initial-exec: one pointer in the static TLS surplus, read without a call to __tls_get_addr. */
static __thread struct table *worker_table __attribute__((tls_model("initial-exec")));

/* ---- small helpers ---- */

static uint64_t fnv1a(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return h;
}

static void log_line(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void log_line(int level, const char *fmt, ...) {
  if (!envoy_dynamic_module_callback_log_enabled(level)) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  envoy_dynamic_module_callback_log(level, (ws_bytes){line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1});
}

static bool request_header(ws_envoy_filter filter, const char *name, size_t name_len, ws_bytes *value) {
  return envoy_dynamic_module_callback_http_get_header(filter, WS_REQUEST_HEADERS, (ws_bytes){name, name_len}, value, 0, NULL);
}

/* ---- the per-request work ---- */

/* What one request says: the connection's key (own address, peer address) and its class. */
struct observed {
  ws_bytes own, peer;
  size_t count;
  ws_bytes values[4 + MAX_HEADERS];
  bool present[4 + MAX_HEADERS];
};

static const ws_bytes CLASS_PSEUDO[4] = {{":authority", 10}, {":path", 5}, {":method", 7}, {":scheme", 7}};

static bool observe(ws_envoy_filter filter, const struct config *cfg, struct observed *o) {
  /* Inbound sidecar placement: the session's own end is the local address, the peer the remote. */
  if (!envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, WS_ATTR_DESTINATION_ADDRESS, &o->own)) return false;
  if (!envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, WS_ATTR_SOURCE_ADDRESS, &o->peer)) return false;
  o->count = 4 + cfg->header_count;
  for (size_t i = 0; i < o->count; i++) {
    const ws_bytes name = i < 4 ? CLASS_PSEUDO[i] : cfg->headers[i - 4];
    o->present[i] = request_header(filter, name.ptr, name.len, &o->values[i]);
  }
  return true;
}

static bool same_key(const struct entry *e, const struct observed *o) {
  return e->key_len == o->own.len + 1 + o->peer.len && memcmp(e->bytes, o->own.ptr, o->own.len) == 0 &&
         e->bytes[o->own.len] == ' ' && memcmp(e->bytes + o->own.len + 1, o->peer.ptr, o->peer.len) == 0;
}

static bool same_class(const struct entry *e, const struct observed *o) {
  if (e->count != o->count) return false;
  const char *at = e->bytes + e->key_len;
  for (size_t i = 0; i < o->count; i++) {
    const size_t len = o->present[i] ? o->values[i].len : SIZE_MAX;
    if (e->lens[i] != len) return false;
    if (len != SIZE_MAX) {
      if (memcmp(at, o->values[i].ptr, len) != 0) return false;
      at += len;
    }
  }
  return true;
}

/* Keep `o` in `e`; false when it does not fit (then the connection is never remembered). */
static bool store(struct entry *e, uint64_t hash, const struct observed *o) {
  size_t need = o->own.len + 1 + o->peer.len;
  for (size_t i = 0; i < o->count; i++) need += o->present[i] ? o->values[i].len : 0;
  if (need > ENTRY_BYTES) return false;
  char *at = e->bytes;
  memcpy(at, o->own.ptr, o->own.len), at += o->own.len;
  *at++ = ' ';
  memcpy(at, o->peer.ptr, o->peer.len), at += o->peer.len;
  e->key_len = (uint16_t)(at - e->bytes);
  for (size_t i = 0; i < o->count; i++) {
    e->lens[i] = o->present[i] ? o->values[i].len : SIZE_MAX;
    if (o->present[i]) memcpy(at, o->values[i].ptr, o->values[i].len), at += o->values[i].len;
  }
  e->count = (uint16_t)o->count;
  e->hash = hash;
  return true;
}

/* True when the connection already had this class (nothing to report). */
static bool known(struct table *t, const struct observed *o) {
  uint64_t hash = fnv1a(fnv1a(0xcbf29ce484222325ULL, o->own.ptr, o->own.len), o->peer.ptr, o->peer.len);
  struct entry *victim = NULL;
  for (size_t p = 0; p < PROBES; p++) {
    struct entry *e = &t->slots[(hash + p) & (TABLE_SLOTS - 1)];
    if (e->key_len != 0 && e->hash == hash && same_key(e, o)) {
      e->stamp = ++t->clock;
      if (same_class(e, o)) return true;
      victim = e; /* the same connection, a new class: replace its entry */
      break;
    }
    if (victim == NULL || e->key_len == 0 || (victim->key_len != 0 && e->stamp < victim->stamp)) victim = e;
  }
  if (!store(victim, hash, o)) victim->key_len = 0;
  victim->stamp = ++t->clock;
  return false;
}

/* ---- Envoy's hooks ---- */

EXPORT const char *envoy_dynamic_module_on_program_init(void) { return WS_ENVOY_ABI_VERSION; }

EXPORT const void *envoy_dynamic_module_on_http_filter_config_new(ws_envoy_filter_config envoy_config, ws_bytes name, ws_bytes text) {
  (void)envoy_config;
  struct config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL) return NULL;
  cfg->empty = name.len == 5 && memcmp(name.ptr, "empty", 5) == 0;
  /* "a,b,c": the allow-listed headers. */
  for (size_t start = 0; start < text.len && cfg->header_count < MAX_HEADERS;) {
    size_t end = start;
    while (end < text.len && text.ptr[end] != ',') end++;
    size_t len = end - start;
    if (len > 0 && len < MAX_NAME) {
      memcpy(cfg->names[cfg->header_count], text.ptr + start, len);
      cfg->headers[cfg->header_count] = (ws_bytes){cfg->names[cfg->header_count], len};
      cfg->header_count++;
    }
    start = end + 1;
  }
  log_line(WS_LOG_INFO, "wansteer module: filter %.*s with %zu allow-listed headers", (int)name.len, name.ptr, cfg->header_count);
  return cfg;
}

EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(const void *cfg) { free((void *)cfg); }

/* The filter needs no state of its own per stream: its "module pointer" is the config. */
EXPORT const void *envoy_dynamic_module_on_http_filter_new(const void *cfg, ws_envoy_filter filter) {
  (void)filter;
  return cfg;
}

static int request_headers(ws_envoy_filter filter, const void *cfg) {
  if (((const struct config *)cfg)->empty) return WS_CONTINUE;
  struct table *t = worker_table;
  if (t == NULL) {
    t = worker_table = calloc(1, sizeof *t);
    if (t == NULL) return WS_CONTINUE;
  }
  struct observed o;
  if (!observe(filter, cfg, &o)) return WS_CONTINUE;
  if (known(t, &o)) {
    t->hits++;
    return WS_CONTINUE;
  }
  t->misses++;
  /* Here the real filter would report the class to the agent. */
  log_line(WS_LOG_DEBUG, "wansteer module: new class on %.*s <- %.*s: authority %.*s path %.*s method %.*s (misses %llu, hits %llu)",
           (int)o.own.len, o.own.ptr, (int)o.peer.len, o.peer.ptr, (int)o.values[0].len, o.values[0].ptr,
           (int)o.values[1].len, o.values[1].ptr, (int)o.values[2].len, o.values[2].ptr,
           (unsigned long long)t->misses, (unsigned long long)t->hits);
  return WS_CONTINUE;
}

#ifdef WS_PROFILE
/* A profiling build (make PROFILE=1): the hook's own time, from inside the module, so that the
 * quick path's cost can be told apart from the machine's noise. Logged at warning every 2^18
 * requests per worker, per filter (the empty one gives the clock's own cost). */
#include <time.h>
static __thread uint64_t profile_ns[2], profile_n[2];
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

EXPORT int envoy_dynamic_module_on_http_filter_request_headers(ws_envoy_filter filter, const void *cfg, bool end_of_stream) {
  (void)end_of_stream;
#ifdef WS_PROFILE
  const int which = ((const struct config *)cfg)->empty ? 0 : 1;
  const uint64_t start = now_ns();
  const int status = request_headers(filter, cfg);
  profile_ns[which] += now_ns() - start;
  if ((++profile_n[which] & ((1u << 18) - 1)) == 0)
    log_line(WS_LOG_WARN, "wansteer module profile: %s filter, %.0f ns per request over %llu requests", which ? "session" : "empty",
             (double)profile_ns[which] / (double)profile_n[which], (unsigned long long)profile_n[which]);
  return status;
#else
  return request_headers(filter, cfg);
#endif
}

/* The rest of the hooks Envoy requires: nothing to do. */
EXPORT int envoy_dynamic_module_on_http_filter_request_body(void *f, const void *m, bool eos) { (void)f, (void)m, (void)eos; return WS_CONTINUE; }
EXPORT int envoy_dynamic_module_on_http_filter_request_trailers(void *f, const void *m) { (void)f, (void)m; return WS_CONTINUE; }
EXPORT int envoy_dynamic_module_on_http_filter_response_headers(void *f, const void *m, bool eos) { (void)f, (void)m, (void)eos; return WS_CONTINUE; }
EXPORT int envoy_dynamic_module_on_http_filter_response_body(void *f, const void *m, bool eos) { (void)f, (void)m, (void)eos; return WS_CONTINUE; }
EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(void *f, const void *m) { (void)f, (void)m; return WS_CONTINUE; }
EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(void *f, const void *m) { (void)f, (void)m; }
EXPORT void envoy_dynamic_module_on_http_filter_destroy(const void *m) { (void)m; }
EXPORT void envoy_dynamic_module_on_http_filter_http_callout_done(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_http_stream_headers(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_http_stream_data(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_http_stream_trailers(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_http_stream_complete(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_http_stream_reset(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_scheduled(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(void) {}
EXPORT void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(void) {}
