/*
 * The wansteer session reporter as an Envoy dynamic module (issue 14): what the Lua filter
 * (envoy-filters/wansteer/report.lua) does, with the same semantics and byte-identical reports,
 * at a fraction of its cost per request.
 *
 * Per request, on the worker that runs it:
 *   - the quick path: the connection's two addresses as Envoy gives them and the values of the
 *     request's class (the authority, the allow-listed headers, the path, method and scheme where
 *     the rules read them, the matched route); a lookup in this worker's table of connections
 *     already reported; when the connection reported this class less than refresh_s ago, done;
 *   - else the full path: the addresses checked (report.lua's endpoint()), the report encoded
 *     (report.lua's encode(), byte for byte) and appended to the configuration's pending queue,
 *     and the connection remembered with its class. A worker never does I/O.
 * On the main thread (the config scheduler's event): the queue drained into batches of at most
 * max_batch reports per address family, each POSTed ({"sessions":[...]}) to the family's agent
 * cluster with an HTTP callout. Nothing is retried: refresh_s heals a lost report, as with Lua.
 *
 * Configuration (filter_config, a StringValue): `key=value` lines, see parse_config(). A
 * configuration it cannot parse is refused (config_new returns NULL; Envoy rejects the filter).
 * The filter named "empty" does nothing per request: the floor of a module filter, for the bench.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy_module_abi.h"

#define EXPORT __attribute__((visibility("default")))

enum { MAX_HEADERS = 32, MAX_NAME = 128, MAX_VALUE_PARTS = 64 };
enum { MAX_WORKERS = 1024, PROBES = 8 };
/* Class values: authority, path, method, scheme, then the headers, then the route. */
enum { CLASS_AUTHORITY = 0, CLASS_PATH, CLASS_METHOD, CLASS_SCHEME, CLASS_HEADERS };
enum { FAMILY_V4 = 0, FAMILY_V6 = 1 };

typedef enum { PLACEMENT_SIDECAR_INBOUND, PLACEMENT_SIDECAR_OUTBOUND, PLACEMENT_GATEWAY } placement;

/* One report waiting for the main thread. */
struct pending {
  struct pending *next;
  int family;
  size_t len;
  char json[];
};

/* One connection's last report: [key][u32 len, value]... (len UINT32_MAX: absent), and when. */
struct slot {
  uint64_t hash;
  uint64_t used; /* the table's clock when last used: the least recently used goes first */
  uint64_t at;   /* seconds (coarse monotonic) when reported */
  uint32_t key_len, blob_len;
  char *blob; /* NULL: free */
};

struct table {
  uint64_t clock;
  size_t mask;
  struct slot slots[];
};

struct config {
  bool empty; /* filter_name "empty": do nothing per request */
  ws_envoy_filter_config envoy;
  placement placement;
  bool inbound, report_route, may_be_quic;
  bool class_path, class_method, class_scheme;
  char cluster[2][256]; /* per family */
  char authority[256];
  char path[256];
  uint64_t timeout_ms, refresh_s;
  size_t remember, max_pending, max_batch;
  size_t header_count;
  char headers[MAX_HEADERS][MAX_NAME];
  size_t header_lens[MAX_HEADERS];
  size_t table_slots;
  struct table *tables[MAX_WORKERS]; /* one per worker, each touched only by its worker */

  ws_envoy_scheduler scheduler;
  pthread_mutex_t lock; /* guards the queue */
  struct pending *head, **tail;
  size_t pending_count;

  bool counters;
  size_t c_queued, c_dropped, c_sent, c_failed;
};

/* ---- small helpers ---- */

static void log_line(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(int level, const char *fmt, ...) {
  if (!envoy_dynamic_module_callback_log_enabled(level)) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  envoy_dynamic_module_callback_log(level, (ws_bytes){line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1});
}

static void count(const struct config *cfg, size_t id) {
  if (cfg->counters) envoy_dynamic_module_callback_http_filter_config_increment_counter(cfg->envoy, id, NULL, 0, 1);
}

static uint64_t fnv1a(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return h;
}

/* Seconds on a coarse monotonic clock: refresh_s needs no more, and it costs a few ns. */
static uint64_t now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec;
}

static bool equals(ws_bytes b, const char *text) {
  size_t n = strlen(text);
  return b.len == n && memcmp(b.ptr, text, n) == 0;
}

/* A growable string. On allocation failure `failed` is set and appends stop. */
struct text {
  char *p;
  size_t len, cap;
  bool failed;
};

static void append(struct text *t, const char *s, size_t n) {
  if (t->failed) return;
  if (t->len + n > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n) cap *= 2;
    char *p = realloc(t->p, cap);
    if (p == NULL) {
      t->failed = true;
      return;
    }
    t->p = p, t->cap = cap;
  }
  memcpy(t->p + t->len, s, n);
  t->len += n;
}

static void append_s(struct text *t, const char *s) { append(t, s, strlen(s)); }

/* ---- request values ---- */

/* A value as the filter sees it: absent, or bytes (a header's several values joined by ","). */
struct value {
  bool present;
  ws_bytes bytes;
};

/* Per-worker scratch for joined header values: valid until the next request on this worker. */
static __thread char joined_buf[16384];

/* A request header as Envoy's Lua headers:get gives it: its values joined by ",". */
static struct value header(ws_envoy_filter filter, const char *name, size_t name_len, size_t *joined_at) {
  struct value v = {false, {NULL, 0}};
  size_t n = 0;
  if (!envoy_dynamic_module_callback_http_get_header(filter, WS_REQUEST_HEADERS, (ws_bytes){name, name_len}, &v.bytes, 0, &n)) return v;
  v.present = true;
  if (n <= 1) return v;
  /* Several values: join them into the scratch buffer (Envoy's Lua get() joins with ","). */
  size_t start = *joined_at, at = start;
  for (size_t i = 0; i < n && i < MAX_VALUE_PARTS; i++) {
    ws_bytes part;
    if (!envoy_dynamic_module_callback_http_get_header(filter, WS_REQUEST_HEADERS, (ws_bytes){name, name_len}, &part, i, NULL)) continue;
    size_t need = part.len + (at > start ? 1 : 0);
    if (at + need > sizeof joined_buf) return (struct value){false, {NULL, 0}}; /* too long: treated as absent */
    if (at > start) joined_buf[at++] = ',';
    memcpy(joined_buf + at, part.ptr, part.len);
    at += part.len;
  }
  *joined_at = at;
  v.bytes = (ws_bytes){joined_buf + start, at - start};
  return v;
}

static struct value attribute(ws_envoy_filter filter, int id) {
  struct value v = {false, {NULL, 0}};
  v.present = envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, id, &v.bytes);
  if (v.present && v.bytes.ptr == NULL) v.bytes.len = 0;
  return v;
}

static const char *const PSEUDO[4] = {":authority", ":path", ":method", ":scheme"};

/* Where the module's network filter (direct_remote, below) leaves the connection's own remote address. */
static const char DIRECT_REMOTE_KEY[] = "wansteer.direct_remote";

/*
 * The downstream connection's remote address, as Lua's downstreamDirectRemoteAddress gives it. The
 * HTTP filter's source.address is Envoy's *derived* remote address, which a client's
 * X-Forwarded-For replaces where the listener does not use the connection's (use_remote_address
 * false, as in Istio's sidecars). So the module's network filter, which sees the connection, keeps
 * the direct one in the connection's filter state; without it (not installed) source.address is
 * used, and an XFF-derived one has no port, which endpoint() refuses: no report, never a wrong one.
 */
static struct value direct_remote(ws_envoy_filter filter) {
  struct value v = {false, {NULL, 0}};
  if (envoy_dynamic_module_callback_http_get_filter_state_bytes(filter, (ws_bytes){DIRECT_REMOTE_KEY, sizeof DIRECT_REMOTE_KEY - 1}, &v.bytes) &&
      v.bytes.ptr != NULL && v.bytes.len > 0) {
    v.present = true;
    return v;
  }
  return attribute(filter, WS_ATTR_SOURCE_ADDRESS);
}

/* What one request shows: the connection's key parts and the class's values. */
struct observed {
  bool udp;
  ws_bytes own, peer; /* as Envoy gives them */
  size_t count;       /* class values: 4 + headers + 1 (route) */
  struct value values[CLASS_HEADERS + MAX_HEADERS + 1];
  bool counts[CLASS_HEADERS + MAX_HEADERS + 1]; /* whether the value decides the class */
};

static bool is_udp(ws_envoy_filter filter) {
  struct value p = attribute(filter, WS_ATTR_REQUEST_PROTOCOL);
  return p.present && equals(p.bytes, "HTTP/3");
}

/* Read what decides the class (all of it when `full`: the report needs every value). */
static bool observe(ws_envoy_filter filter, const struct config *cfg, bool full, struct observed *o) {
  size_t joined_at = 0;
  /* Only a gateway can be HTTP/3; the full path reads the protocol everywhere (as report.lua). */
  o->udp = (full || cfg->may_be_quic) && is_udp(filter);
  struct value local = attribute(filter, WS_ATTR_DESTINATION_ADDRESS);
  struct value remote = direct_remote(filter);
  if (!local.present || !remote.present) return false;
  /* Sidecar-outbound: the application's socket (Envoy's remote) is the session's own end. */
  bool outbound = cfg->placement == PLACEMENT_SIDECAR_OUTBOUND;
  o->own = outbound ? remote.bytes : local.bytes;
  o->peer = outbound ? local.bytes : remote.bytes;
  o->count = CLASS_HEADERS + cfg->header_count + 1;
  const bool counted[4] = {true, cfg->class_path, cfg->class_method, cfg->class_scheme};
  for (size_t i = 0; i < CLASS_HEADERS; i++) {
    o->counts[i] = counted[i];
    o->values[i] = (struct value){false, {NULL, 0}};
    if (counted[i] || full) o->values[i] = header(filter, PSEUDO[i], strlen(PSEUDO[i]), &joined_at);
  }
  for (size_t i = 0; i < cfg->header_count; i++) {
    o->counts[CLASS_HEADERS + i] = true;
    o->values[CLASS_HEADERS + i] = header(filter, cfg->headers[i], cfg->header_lens[i], &joined_at);
  }
  struct value *route = &o->values[o->count - 1];
  o->counts[o->count - 1] = cfg->report_route;
  *route = (struct value){false, {NULL, 0}};
  if (cfg->report_route) {
    *route = attribute(filter, WS_ATTR_XDS_ROUTE_NAME);
    if (route->present && route->bytes.len == 0) route->present = false; /* "" is no route */
  }
  return true;
}

/* ---- the per-worker table of connections already reported ---- */

static uint64_t key_hash(const struct observed *o) {
  uint64_t h = fnv1a(0xcbf29ce484222325ULL, o->udp ? "u" : "t", 1);
  h = fnv1a(h, o->own.ptr, o->own.len);
  h = fnv1a(h, " ", 1);
  return fnv1a(h, o->peer.ptr, o->peer.len);
}

static size_t key_len(const struct observed *o) { return 2 + o->own.len + 1 + o->peer.len; }

static bool same_key(const struct slot *s, const struct observed *o) {
  if (s->key_len != key_len(o)) return false;
  const char *b = s->blob;
  return b[0] == (o->udp ? 'u' : 't') && b[1] == ' ' && memcmp(b + 2, o->own.ptr, o->own.len) == 0 &&
         b[2 + o->own.len] == ' ' && memcmp(b + 3 + o->own.len, o->peer.ptr, o->peer.len) == 0;
}

/* The class as stored: counted values only; an uncounted one is stored as absent. */
static bool same_class(const struct slot *s, const struct observed *o) {
  const char *at = s->blob + s->key_len, *end = s->blob + s->blob_len;
  for (size_t i = 0; i < o->count; i++) {
    if (at + 4 > end) return false;
    uint32_t len;
    memcpy(&len, at, 4), at += 4;
    const struct value *v = &o->values[i];
    const bool present = o->counts[i] && v->present;
    if (!present) {
      if (len != UINT32_MAX) return false;
      continue;
    }
    if (len != v->bytes.len || memcmp(at, v->bytes.ptr, len) != 0) return false;
    at += len;
  }
  return at == end;
}

static struct table *worker_table(struct config *cfg, ws_envoy_filter filter) {
  uint32_t worker = envoy_dynamic_module_callback_http_filter_get_worker_index(filter);
  if (worker >= MAX_WORKERS) return NULL; /* then nothing is remembered: a report per request */
  struct table *t = cfg->tables[worker];
  if (t == NULL) {
    t = calloc(1, sizeof *t + cfg->table_slots * sizeof(struct slot));
    if (t == NULL) return NULL;
    t->mask = cfg->table_slots - 1;
    cfg->tables[worker] = t;
  }
  return t;
}

/* The slot of this connection, or NULL. */
static struct slot *lookup(struct table *t, uint64_t hash, const struct observed *o) {
  for (size_t p = 0; p < PROBES; p++) {
    struct slot *s = &t->slots[(hash + p) & t->mask];
    if (s->blob != NULL && s->hash == hash && same_key(s, o)) return s;
  }
  return NULL;
}

/* Remember `o` as reported now: in its own slot, a free one, or the least recently used. */
static void remember(struct table *t, uint64_t hash, const struct observed *o, uint64_t now) {
  struct slot *victim = lookup(t, hash, o);
  for (size_t p = 0; victim == NULL && p < PROBES; p++) {
    struct slot *s = &t->slots[(hash + p) & t->mask];
    if (s->blob == NULL) victim = s;
  }
  if (victim == NULL) {
    victim = &t->slots[hash & t->mask];
    for (size_t p = 1; p < PROBES; p++) {
      struct slot *s = &t->slots[(hash + p) & t->mask];
      if (s->used < victim->used) victim = s;
    }
  }
  size_t need = key_len(o);
  for (size_t i = 0; i < o->count; i++) need += 4 + (o->counts[i] && o->values[i].present ? o->values[i].bytes.len : 0);
  char *blob = malloc(need);
  if (blob == NULL) return;
  char *at = blob;
  *at++ = o->udp ? 'u' : 't';
  *at++ = ' ';
  memcpy(at, o->own.ptr, o->own.len), at += o->own.len;
  *at++ = ' ';
  memcpy(at, o->peer.ptr, o->peer.len), at += o->peer.len;
  for (size_t i = 0; i < o->count; i++) {
    const bool present = o->counts[i] && o->values[i].present;
    uint32_t len = present ? (uint32_t)o->values[i].bytes.len : UINT32_MAX;
    memcpy(at, &len, 4), at += 4;
    if (present) memcpy(at, o->values[i].bytes.ptr, len), at += len;
  }
  free(victim->blob);
  victim->blob = blob;
  victim->blob_len = (uint32_t)need;
  victim->key_len = (uint32_t)key_len(o);
  victim->hash = hash;
  victim->at = now;
  victim->used = ++t->clock;
}

/* ---- addresses: report.lua's endpoint() ---- */

static bool all_digits(const char *p, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)p[i])) return false;
  return true;
}

/* 1..65535 without a leading zero. */
static bool is_port(const char *p, size_t n) {
  if (!all_digits(p, n) || p[0] == '0' || n > 5) return false;
  long v = 0;
  for (size_t i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
  return v >= 1 && v <= 65535;
}

/* Four octets of 1 to 3 digits, each <= 255 and without a leading zero. */
static bool is_ipv4(const char *p, size_t n) {
  size_t start = 0, octets = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '.') {
      size_t len = i - start;
      if (len < 1 || len > 3 || !all_digits(p + start, len)) return false;
      int v = 0;
      for (size_t j = start; j < i; j++) v = v * 10 + (p[j] - '0');
      if (v > 255 || (len > 1 && p[start] == '0')) return false;
      octets++;
      start = i + 1;
    }
  }
  return octets == 4;
}

static bool contains(const char *p, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(p + i, needle, m) == 0) return true;
  return false;
}

/* report.lua's is_ipv6, rule for rule (it checks the text's shape, not the group count). */
static bool is_ipv6(const char *p, size_t n) {
  if (n < 2 || n > 45 || !contains(p, n, ":") || contains(p, n, ":::")) return false;
  size_t doubles = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if (p[i] == ':' && p[i + 1] == ':') doubles++, i++;
  if (doubles > 1) return false;
  size_t tail = n;
  while (tail > 0 && p[tail - 1] != ':') tail--;
  if (contains(p + tail, n - tail, ".")) {
    if (!is_ipv4(p + tail, n - tail)) return false;
    n = tail; /* an embedded IPv4 address (::ffff:10.0.0.1) ends the text */
  }
  for (size_t i = 0; i < n;) {
    if (p[i] == ':') {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && p[j] != ':') j++;
    if (j - i > 4) return false;
    for (size_t k = i; k < j; k++)
      if (!isxdigit((unsigned char)p[k])) return false;
    i = j;
  }
  return true;
}

/* Envoy's "10.0.0.5:8080" / "[fd00::5]:8080", checked, into `out` (an IPv4-mapped IPv6 address
 * becomes the IPv4 form the packets carry). Returns the family, or -1: not reported. */
static int endpoint(ws_bytes a, char *out, size_t out_size) {
  const char *p = a.ptr;
  size_t n = a.len;
  if (n == 0 || n + 1 > out_size) return -1;
  size_t colon = n;
  while (colon > 0 && p[colon - 1] != ':') colon--;
  if (colon == 0) return -1;
  const char *port = p + colon;
  size_t port_len = n - colon;
  if (!all_digits(port, port_len)) return -1;
  size_t host_len = colon - 1;
  if (p[0] != '[') {
    /* ^([%d%.]+):(%d+)$ */
    for (size_t i = 0; i < host_len; i++)
      if (!isdigit((unsigned char)p[i]) && p[i] != '.') return -1;
    if (host_len == 0 || !is_ipv4(p, host_len) || !is_port(port, port_len)) return -1;
    memcpy(out, p, n), out[n] = '\0';
    return FAMILY_V4;
  }
  /* ^%[([%x:%.]+)%]:(%d+)$ */
  if (host_len < 2 || p[host_len - 1] != ']') return -1;
  const char *ip = p + 1;
  size_t ip_len = host_len - 2;
  if (ip_len == 0) return -1;
  for (size_t i = 0; i < ip_len; i++)
    if (!isxdigit((unsigned char)ip[i]) && ip[i] != ':' && ip[i] != '.') return -1;
  if (!is_ipv6(ip, ip_len) || !is_port(port, port_len)) return -1;
  /* ::ffff:a.b.c.d (any case) -> a.b.c.d:port */
  if (ip_len > 7 && strncasecmp(ip, "::ffff:", 7) == 0) {
    const char *v4 = ip + 7;
    size_t v4_len = ip_len - 7;
    bool dotted = true;
    for (size_t i = 0; i < v4_len; i++)
      if (!isdigit((unsigned char)v4[i]) && v4[i] != '.') dotted = false;
    if (dotted && is_ipv4(v4, v4_len)) {
      memcpy(out, v4, v4_len);
      out[v4_len] = ':';
      memcpy(out + v4_len + 1, port, port_len);
      out[v4_len + 1 + port_len] = '\0';
      return FAMILY_V4;
    }
  }
  memcpy(out, p, n), out[n] = '\0';
  return FAMILY_V6;
}

/* ---- the report: report.lua's encode(), byte for byte ---- */

static void json_string(struct text *t, const char *s, size_t n) {
  append(t, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default: break;
    }
    if (esc != NULL) {
      append_s(t, esc);
    } else if (c < 0x20 || c == 0x7f) { /* Lua's %c: the C locale's control characters */
      char u[8];
      snprintf(u, sizeof u, "\\u%04x", c);
      append_s(t, u);
    } else {
      append(t, (const char *)&c, 1);
    }
  }
  append(t, "\"", 1);
}

static void json_field(struct text *t, bool *first, const char *key, ws_bytes value) {
  if (!*first) append(t, ",", 1);
  *first = false;
  json_string(t, key, strlen(key));
  append(t, ":", 1);
  json_string(t, value.ptr, value.len);
}

/* Istio identities: spiffe://<trust domain>/ns/<namespace>/sa/<service account>. */
static bool spiffe_namespace(ws_bytes san, ws_bytes *ns) {
  const char *p = san.ptr, *end = san.ptr + san.len;
  if (san.len < 9 || memcmp(p, "spiffe://", 9) != 0) return false;
  const char *part[4];
  size_t len[4];
  p += 9;
  /* <td>/ns/<ns>/sa/<sa>: five non-empty slash-free parts with the fixed words "ns" and "sa". */
  const char *td = p;
  while (p < end && *p != '/') p++;
  if (p == td || p == end) return false;
  for (int i = 0; i < 4; i++) {
    p++; /* the slash */
    part[i] = p;
    while (p < end && *p != '/') p++;
    len[i] = (size_t)(p - part[i]);
    if (len[i] == 0) return false;
    if (i < 3 && p == end) return false;
  }
  if (p != end) return false;
  if (len[0] != 2 || memcmp(part[0], "ns", 2) != 0 || len[2] != 2 || memcmp(part[2], "sa", 2) != 0) return false;
  *ns = (ws_bytes){part[1], len[1]};
  return true;
}

/* The report's JSON (src/steering/types.ts SessionReport), as report.lua's encode() writes it. */
static void encode(struct text *t, const struct config *cfg, const struct observed *o, const char *own, const char *peer,
                   const struct value *ns) {
  bool first = true;
  append_s(t, "{");
  json_field(t, &first, "direction", (ws_bytes){cfg->inbound ? "inbound" : "outbound", cfg->inbound ? 7 : 8});
  json_field(t, &first, "protocol", (ws_bytes){o->udp ? "udp" : "tcp", 3});
  json_field(t, &first, "local", (ws_bytes){own, strlen(own)});
  json_field(t, &first, "remote", (ws_bytes){peer, strlen(peer)});
  append_s(t, ",\"request\":{");
  bool req_first = true;
  json_field(t, &req_first, "authority", o->values[CLASS_AUTHORITY].bytes);
  json_field(t, &req_first, "path", o->values[CLASS_PATH].bytes);
  json_field(t, &req_first, "method", o->values[CLASS_METHOD].bytes);
  if (o->values[CLASS_SCHEME].present) json_field(t, &req_first, "scheme", o->values[CLASS_SCHEME].bytes);
  bool any_header = false;
  for (size_t i = 0; i < cfg->header_count; i++) {
    const struct value *v = &o->values[CLASS_HEADERS + i];
    if (!v->present) continue;
    if (!any_header) append_s(t, ",\"headers\":{");
    bool hfirst = !any_header;
    any_header = true;
    json_field(t, &hfirst, cfg->headers[i], v->bytes);
  }
  if (any_header) append_s(t, "}");
  if (ns->present) json_field(t, &req_first, "sourceNamespace", ns->bytes);
  const struct value *route = &o->values[o->count - 1];
  if (cfg->report_route && route->present) json_field(t, &req_first, "routeName", route->bytes);
  append_s(t, "}}");
}

/* ---- the queue: workers append, the main thread drains ---- */

/* Append a report; false when the queue is full (the report is dropped and counted). */
static bool enqueue(struct config *cfg, int family, const struct text *json) {
  struct pending *r = malloc(sizeof *r + json->len);
  if (r == NULL) return false;
  r->next = NULL;
  r->family = family;
  r->len = json->len;
  memcpy(r->json, json->p, json->len);
  pthread_mutex_lock(&cfg->lock);
  if (cfg->pending_count >= cfg->max_pending) {
    pthread_mutex_unlock(&cfg->lock);
    free(r);
    return false;
  }
  const bool was_empty = cfg->pending_count == 0;
  *cfg->tail = r;
  cfg->tail = &r->next;
  cfg->pending_count++;
  pthread_mutex_unlock(&cfg->lock);
  /* One event per non-empty spell: the main thread drains everything queued until it runs. */
  if (was_empty) envoy_dynamic_module_callback_http_filter_config_scheduler_commit(cfg->scheduler, 0);
  return true;
}

/* The full path: check, encode, queue, remember. */
static void report(ws_envoy_filter filter, struct config *cfg, struct table *t) {
  struct observed o;
  if (!observe(filter, cfg, true, &o)) return;
  char own[128], peer[128];
  int own_family = endpoint(o.own, own, sizeof own);
  int peer_family = endpoint(o.peer, peer, sizeof peer);
  if (own_family < 0 || peer_family < 0) {
    log_line(WS_LOG_DEBUG, "wansteer: no session report: connection addresses are not ip:port");
    return;
  }
  if (own_family != peer_family) {
    log_line(WS_LOG_DEBUG, "wansteer: no session report: connection addresses differ in family");
    return;
  }
  if (!o.values[CLASS_AUTHORITY].present || !o.values[CLASS_PATH].present || !o.values[CLASS_METHOD].present) {
    log_line(WS_LOG_DEBUG, "wansteer: no session report: request has no :authority, :path or :method");
    return;
  }
  struct value ns = {false, {NULL, 0}};
  if (cfg->inbound) {
    /* Envoy gives the certificate's first URI SAN; Istio's certificates have one, the SPIFFE id. */
    struct value san = attribute(filter, WS_ATTR_URI_SAN_PEER_CERTIFICATE);
    if (san.present) ns.present = spiffe_namespace(san.bytes, &ns.bytes);
  }
  struct text json = {0};
  encode(&json, cfg, &o, own, peer, &ns);
  if (json.failed) {
    free(json.p);
    return;
  }
  if (enqueue(cfg, own_family, &json)) {
    count(cfg, cfg->c_queued);
    /* Remembered when queued (as Lua remembers once httpCall took the report); a dropped one is not. */
    if (t != NULL) remember(t, key_hash(&o), &o, now_s());
  } else {
    count(cfg, cfg->c_dropped);
    log_line(WS_LOG_DEBUG, "wansteer: session report dropped: %zu reports already wait", cfg->max_pending);
  }
  free(json.p);
}

static int request_headers(ws_envoy_filter filter, struct config *cfg) {
  if (cfg->empty) return WS_CONTINUE;
  struct table *t = worker_table(cfg, filter);
  if (t != NULL) {
    /* The quick path: the connection reported this class less than refresh_s ago. */
    struct observed o;
    if (!observe(filter, cfg, false, &o)) return WS_CONTINUE;
    struct slot *s = lookup(t, key_hash(&o), &o);
    if (s != NULL) {
      s->used = ++t->clock;
      if (now_s() - s->at < cfg->refresh_s && same_class(s, &o)) return WS_CONTINUE;
    }
  }
  report(filter, cfg, t);
  return WS_CONTINUE;
}

/* ---- the main thread: batches to the agent ---- */

static void send_batch(struct config *cfg, int family, struct pending **reports, size_t n) {
  struct text body = {0};
  append_s(&body, "{\"sessions\":[");
  for (size_t i = 0; i < n; i++) {
    if (i > 0) append(&body, ",", 1);
    append(&body, reports[i]->json, reports[i]->len);
  }
  append_s(&body, "]}");
  if (body.failed) {
    free(body.p);
    count(cfg, cfg->c_failed);
    return;
  }
  ws_header headers[] = {
      {":method", 7, "POST", 4},
      {":path", 5, cfg->path, strlen(cfg->path)},
      {":authority", 10, cfg->authority, strlen(cfg->authority)},
      {"content-type", 12, "application/json", 16},
  };
  uint64_t id = 0;
  const char *cluster = cfg->cluster[family];
  int result = envoy_dynamic_module_callback_http_filter_config_http_callout(
      cfg->envoy, &id, (ws_bytes){cluster, strlen(cluster)}, headers, sizeof headers / sizeof headers[0],
      (ws_bytes){body.p, body.len}, cfg->timeout_ms);
  free(body.p);
  if (result == WS_CALLOUT_INIT_SUCCESS) {
    count(cfg, cfg->c_sent);
  } else {
    count(cfg, cfg->c_failed);
    log_line(WS_LOG_WARN, "wansteer: session reports not sent: callout to %s failed to start (%d)", cluster, result);
  }
}

EXPORT void envoy_dynamic_module_on_http_filter_config_scheduled(ws_envoy_filter_config envoy, const void *module_cfg, uint64_t event) {
  (void)envoy, (void)event;
  struct config *cfg = (struct config *)module_cfg;
  pthread_mutex_lock(&cfg->lock);
  struct pending *list = cfg->head;
  cfg->head = NULL;
  cfg->tail = &cfg->head;
  cfg->pending_count = 0;
  pthread_mutex_unlock(&cfg->lock);

  struct pending **batch = malloc(cfg->max_batch * sizeof *batch);
  for (int family = FAMILY_V4; family <= FAMILY_V6; family++) {
    size_t n = 0;
    for (struct pending *r = list; r != NULL; r = r->next) {
      if (r->family != family) continue;
      if (batch == NULL) continue;
      batch[n++] = r;
      if (n == cfg->max_batch) send_batch(cfg, family, batch, n), n = 0;
    }
    if (n > 0) send_batch(cfg, family, batch, n);
  }
  free(batch);
  while (list != NULL) {
    struct pending *next = list->next;
    free(list);
    list = next;
  }
}

/* The agent's answer: a 2xx is done; anything else is counted and logged, never retried. */
EXPORT void envoy_dynamic_module_on_http_filter_config_http_callout_done(ws_envoy_filter_config envoy, const void *module_cfg, uint64_t id,
                                                                         int result, ws_header *headers, size_t header_count,
                                                                         ws_bytes *body, size_t body_count) {
  (void)envoy, (void)id, (void)body, (void)body_count;
  const struct config *cfg = module_cfg;
  ws_bytes status = {NULL, 0};
  for (size_t i = 0; headers != NULL && i < header_count; i++)
    if (headers[i].name_len == 7 && memcmp(headers[i].name, ":status", 7) == 0) status = (ws_bytes){headers[i].value, headers[i].value_len};
  if (result == WS_CALLOUT_SUCCESS && status.len == 3 && status.ptr[0] == '2') return;
  count(cfg, cfg->c_failed);
  log_line(WS_LOG_DEBUG, "wansteer: session reports not taken: result %d, status %.*s", result, (int)status.len,
           status.ptr ? status.ptr : "");
}

/* ---- configuration ---- */

static bool is_token_char(char c) {
  /* report.lua's ^[%l%d!#$%%&'*+%-.^_`|~]+$ */
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static ws_bytes trim(ws_bytes b) {
  while (b.len > 0 && isspace((unsigned char)b.ptr[0])) b.ptr++, b.len--;
  while (b.len > 0 && isspace((unsigned char)b.ptr[b.len - 1])) b.len--;
  return b;
}

static bool copy_text(char *dst, size_t size, ws_bytes v) {
  if (v.len == 0 || v.len >= size) return false;
  memcpy(dst, v.ptr, v.len);
  dst[v.len] = '\0';
  return true;
}

static bool parse_number(ws_bytes v, uint64_t min, uint64_t max, uint64_t *out) {
  if (v.len == 0 || v.len > 12 || !all_digits(v.ptr, v.len)) return false;
  uint64_t n = 0;
  for (size_t i = 0; i < v.len; i++) n = n * 10 + (uint64_t)(v.ptr[i] - '0');
  if (n < min || n > max) return false;
  *out = n;
  return true;
}

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

/* The next item of a comma-separated list from *at on, trimmed; empty items are skipped. False at the end. */
static bool next_item(ws_bytes list, size_t *at, ws_bytes *item) {
  while (*at < list.len) {
    size_t end = *at;
    while (end < list.len && list.ptr[end] != ',') end++;
    *item = trim((ws_bytes){list.ptr + *at, end - *at});
    *at = end + 1;
    if (item->len > 0) return true;
  }
  return false;
}

/* "a,b,c" into the allow-listed headers, checked and sorted (as report.lua does). */
static const char *parse_headers(struct config *cfg, ws_bytes v) {
  ws_bytes name;
  for (size_t at = 0; next_item(v, &at, &name);) {
    if (cfg->header_count == MAX_HEADERS) return "more than 32 headers";
    for (size_t i = 0; i < name.len; i++)
      if (!is_token_char(name.ptr[i])) return "a header name is not a lower-case token";
    if (!copy_text(cfg->headers[cfg->header_count], MAX_NAME, name)) return "a header name is too long";
    cfg->header_count++;
  }
  qsort(cfg->headers, cfg->header_count, MAX_NAME, compare_names);
  for (size_t i = 0; i < cfg->header_count; i++) cfg->header_lens[i] = strlen(cfg->headers[i]);
  return NULL;
}

static const char *parse_class_fields(struct config *cfg, ws_bytes v) {
  cfg->class_path = cfg->class_method = cfg->class_scheme = false;
  ws_bytes name;
  for (size_t at = 0; next_item(v, &at, &name);) {
    if (equals(name, "path")) cfg->class_path = true;
    else if (equals(name, "method")) cfg->class_method = true;
    else if (equals(name, "scheme")) cfg->class_scheme = true;
    else return "class_fields names other than path, method, scheme";
  }
  return NULL;
}

/* One `key=value` line; NULL when it is fine, else why not. */
static const char *parse_line(struct config *cfg, ws_bytes key, ws_bytes v, bool *has_cluster_v6, bool *has_authority) {
  uint64_t n;
  if (equals(key, "placement")) {
    if (equals(v, "sidecar-inbound")) cfg->placement = PLACEMENT_SIDECAR_INBOUND;
    else if (equals(v, "sidecar-outbound")) cfg->placement = PLACEMENT_SIDECAR_OUTBOUND;
    else if (equals(v, "gateway")) cfg->placement = PLACEMENT_GATEWAY;
    else return "unknown placement";
  } else if (equals(key, "cluster")) {
    if (!copy_text(cfg->cluster[FAMILY_V4], sizeof cfg->cluster[0], v)) return "cluster is not a cluster name";
  } else if (equals(key, "cluster_v6")) {
    if (!copy_text(cfg->cluster[FAMILY_V6], sizeof cfg->cluster[0], v)) return "cluster_v6 is not a cluster name";
    *has_cluster_v6 = true;
  } else if (equals(key, "authority")) {
    if (!copy_text(cfg->authority, sizeof cfg->authority, v)) return "authority is empty or too long";
    *has_authority = true;
  } else if (equals(key, "path")) {
    if (v.len == 0 || v.ptr[0] != '/' || !copy_text(cfg->path, sizeof cfg->path, v)) return "path is not an absolute path";
  } else if (equals(key, "timeout_ms")) {
    if (!parse_number(v, 1, 600000, &cfg->timeout_ms)) return "timeout_ms is not 1..600000";
  } else if (equals(key, "headers")) {
    return parse_headers(cfg, v);
  } else if (equals(key, "class_fields")) {
    return parse_class_fields(cfg, v);
  } else if (equals(key, "remember_connections")) {
    if (!parse_number(v, 1, 1u << 20, &n)) return "remember_connections is not 1..1048576";
    cfg->remember = n;
  } else if (equals(key, "refresh_s")) {
    if (!parse_number(v, 1, 86400, &cfg->refresh_s)) return "refresh_s is not 1..86400";
  } else if (equals(key, "max_pending")) {
    if (!parse_number(v, 1, 1u << 20, &n)) return "max_pending is not 1..1048576";
    cfg->max_pending = n;
  } else if (equals(key, "max_batch")) {
    if (!parse_number(v, 1, 100000, &n)) return "max_batch is not 1..100000";
    cfg->max_batch = n;
  } else {
    return "unknown key";
  }
  return NULL;
}

/*
 * The configuration: `key=value` lines (blank lines and lines starting with # are skipped):
 *   placement     sidecar-inbound | sidecar-outbound | gateway (required)
 *   cluster       the agent cluster for IPv4 sessions (required); cluster_v6 for IPv6 ones (default: cluster)
 *   authority     the report's :authority (default: cluster); path (default /v1/sessions:batch)
 *   timeout_ms    (default 200)
 *   headers       the allow-listed request headers, comma-separated
 *   class_fields  which of path, method, scheme decide the class; absent: all three; empty: none
 *   remember_connections (default 4096), refresh_s (default 60), max_pending (default 4096),
 *   max_batch (default 1000, the agent's intake.maxBatch default)
 */
static const char *parse_config(struct config *cfg, ws_bytes text) {
  bool has_placement = false, has_cluster_v6 = false, has_authority = false;
  cfg->class_path = cfg->class_method = cfg->class_scheme = true;
  strcpy(cfg->path, "/v1/sessions:batch");
  cfg->timeout_ms = 200;
  cfg->remember = 4096;
  cfg->refresh_s = 60;
  cfg->max_pending = 4096;
  cfg->max_batch = 1000;
  for (size_t start = 0; start < text.len;) {
    size_t end = start;
    while (end < text.len && text.ptr[end] != '\n') end++;
    ws_bytes line = trim((ws_bytes){text.ptr + start, end - start});
    start = end + 1;
    if (line.len == 0 || line.ptr[0] == '#') continue;
    const char *eq = memchr(line.ptr, '=', line.len);
    if (eq == NULL) return "a line is not key=value";
    ws_bytes key = trim((ws_bytes){line.ptr, (size_t)(eq - line.ptr)});
    ws_bytes value = trim((ws_bytes){eq + 1, line.len - (size_t)(eq - line.ptr) - 1});
    const char *problem = parse_line(cfg, key, value, &has_cluster_v6, &has_authority);
    if (problem != NULL) return problem;
    if (equals(key, "placement")) has_placement = true;
  }
  if (!has_placement) return "no placement";
  if (cfg->cluster[FAMILY_V4][0] == '\0') return "no agent cluster";
  if (!has_cluster_v6) strcpy(cfg->cluster[FAMILY_V6], cfg->cluster[FAMILY_V4]);
  if (!has_authority) strcpy(cfg->authority, cfg->cluster[FAMILY_V4]);
  cfg->inbound = cfg->placement != PLACEMENT_SIDECAR_OUTBOUND;
  cfg->report_route = cfg->placement != PLACEMENT_SIDECAR_INBOUND;
  cfg->may_be_quic = cfg->placement == PLACEMENT_GATEWAY;
  /* Lua keeps two generations of `remember` entries: room for as many, as a power of two. */
  cfg->table_slots = 16;
  while (cfg->table_slots < 2 * cfg->remember) cfg->table_slots *= 2;
  return NULL;
}

static void define_counters(struct config *cfg) {
  const struct {
    const char *name;
    size_t *id;
  } defs[] = {
      {"wansteer_reports_queued", &cfg->c_queued},
      {"wansteer_reports_dropped", &cfg->c_dropped},
      {"wansteer_batches_sent", &cfg->c_sent},
      {"wansteer_batches_failed", &cfg->c_failed},
  };
  cfg->counters = true;
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    if (envoy_dynamic_module_callback_http_filter_config_define_counter(cfg->envoy, (ws_bytes){defs[i].name, strlen(defs[i].name)}, NULL, 0,
                                                                        defs[i].id) != WS_METRICS_SUCCESS) {
      cfg->counters = false;
      log_line(WS_LOG_WARN, "wansteer: no counters: %s could not be defined", defs[i].name);
      return;
    }
  }
}

/* ---- Envoy's hooks ---- */

EXPORT const char *envoy_dynamic_module_on_program_init(void) { return WS_ENVOY_ABI_VERSION; }

EXPORT const void *envoy_dynamic_module_on_http_filter_config_new(ws_envoy_filter_config envoy, ws_bytes name, ws_bytes text) {
  struct config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL) return NULL;
  cfg->envoy = envoy;
  if (equals(name, "empty")) {
    cfg->empty = true;
    return cfg;
  }
  const char *problem = equals(name, "session_report") ? parse_config(cfg, text) : "unknown filter name (session_report or empty)";
  if (problem != NULL) {
    log_line(WS_LOG_ERROR, "wansteer: refusing filter %.*s: %s", (int)name.len, name.ptr, problem);
    free(cfg);
    return NULL;
  }
  pthread_mutex_init(&cfg->lock, NULL);
  cfg->tail = &cfg->head;
  cfg->scheduler = envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy);
  define_counters(cfg);
  log_line(WS_LOG_INFO, "wansteer: session reports to %s / %s, %zu allow-listed headers", cfg->cluster[FAMILY_V4], cfg->cluster[FAMILY_V6],
           cfg->header_count);
  return cfg;
}

EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(const void *module_cfg) {
  struct config *cfg = (struct config *)module_cfg;
  if (!cfg->empty) {
    if (cfg->scheduler != NULL) envoy_dynamic_module_callback_http_filter_config_scheduler_delete(cfg->scheduler);
    for (struct pending *r = cfg->head; r != NULL;) {
      struct pending *next = r->next;
      free(r);
      r = next;
    }
    for (size_t w = 0; w < MAX_WORKERS; w++) {
      struct table *t = cfg->tables[w];
      if (t == NULL) continue;
      for (size_t i = 0; i <= t->mask; i++) free(t->slots[i].blob);
      free(t);
    }
    pthread_mutex_destroy(&cfg->lock);
  }
  free(cfg);
}

/* The filter needs no state of its own per stream: its "module pointer" is the config. */
EXPORT const void *envoy_dynamic_module_on_http_filter_new(const void *cfg, ws_envoy_filter filter) {
  (void)filter;
  return cfg;
}

#ifdef WS_PROFILE
/* A profiling build (make PROFILE=1): the hook's own time, from inside the module, so that the
 * quick path's cost can be told apart from the machine's noise. Logged at warning every 2^18
 * requests per worker, per filter (the empty one gives the clock's own cost). */
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
  const int status = request_headers(filter, (struct config *)cfg);
  profile_ns[which] += now_ns() - start;
  if ((++profile_n[which] & ((1u << 18) - 1)) == 0)
    log_line(WS_LOG_WARN, "wansteer module profile: %s filter, %.0f ns per request over %llu requests", which ? "session" : "empty",
             (double)profile_ns[which] / (double)profile_n[which], (unsigned long long)profile_n[which]);
  return status;
#else
  return request_headers(filter, (struct config *)cfg);
#endif
}

/* ---- the network filter direct_remote: the connection's own remote address, for the HTTP filter ---- */

EXPORT const void *envoy_dynamic_module_on_network_filter_config_new(void *envoy, ws_bytes name, ws_bytes text) {
  (void)envoy, (void)text;
  static const char config = 0; /* nothing to configure; Envoy needs a non-NULL pointer */
  if (equals(name, "direct_remote")) return &config;
  log_line(WS_LOG_ERROR, "wansteer: refusing network filter %.*s: unknown filter name (direct_remote)", (int)name.len, name.ptr);
  return NULL;
}

EXPORT void envoy_dynamic_module_on_network_filter_config_destroy(const void *cfg) { (void)cfg; }

EXPORT const void *envoy_dynamic_module_on_network_filter_new(const void *cfg, ws_envoy_network_filter filter) {
  (void)filter;
  return cfg;
}

/* Envoy's text form of the address: "10.0.0.5:8080", "[fd00::5]:8080". */
EXPORT int envoy_dynamic_module_on_network_filter_new_connection(ws_envoy_network_filter filter, const void *m) {
  (void)m;
  ws_bytes ip = {NULL, 0};
  uint32_t port = 0;
  if (!envoy_dynamic_module_callback_network_filter_get_direct_remote_address(filter, &ip, &port) || ip.ptr == NULL || ip.len == 0 || ip.len > 64)
    return WS_CONTINUE;
  char text[96];
  const bool v6 = memchr(ip.ptr, ':', ip.len) != NULL;
  int n = snprintf(text, sizeof text, v6 ? "[%.*s]:%u" : "%.*s:%u", (int)ip.len, ip.ptr, (unsigned)port);
  if (n > 0 && (size_t)n < sizeof text)
    envoy_dynamic_module_callback_network_set_filter_state_bytes(filter, (ws_bytes){DIRECT_REMOTE_KEY, sizeof DIRECT_REMOTE_KEY - 1},
                                                                 (ws_bytes){text, (size_t)n});
  return WS_CONTINUE;
}

EXPORT int envoy_dynamic_module_on_network_filter_read(void *f, const void *m, size_t n, bool eos) { (void)f, (void)m, (void)n, (void)eos; return WS_CONTINUE; }
EXPORT int envoy_dynamic_module_on_network_filter_write(void *f, const void *m, size_t n, bool eos) { (void)f, (void)m, (void)n, (void)eos; return WS_CONTINUE; }
EXPORT void envoy_dynamic_module_on_network_filter_event(void *f, const void *m, int event) { (void)f, (void)m, (void)event; }
EXPORT void envoy_dynamic_module_on_network_filter_destroy(const void *m) { (void)m; }
EXPORT void envoy_dynamic_module_on_network_filter_http_callout_done(void) {}
EXPORT void envoy_dynamic_module_on_network_filter_scheduled(void) {}
EXPORT void envoy_dynamic_module_on_network_filter_config_scheduled(void) {}
EXPORT void envoy_dynamic_module_on_network_filter_above_write_buffer_high_watermark(void) {}
EXPORT void envoy_dynamic_module_on_network_filter_below_write_buffer_low_watermark(void) {}

/* The rest of the HTTP filter's hooks Envoy requires: nothing to do. */
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
