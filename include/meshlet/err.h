/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet's error codes: one table gives every code its name and message. */
#ifndef MESHLET_ERR_H
#define MESHLET_ERR_H

#include <stddef.h>

/*
 * Functions return 0 on success and a negative number on failure: either -errno, or
 * one of the codes below. Our codes start far above any errno value so that the two
 * never collide. Each row is NAME, message.
 */
#define ERR_TABLE(X)                                                                               \
	X(ERR_INTERNAL, "internal error")                                                          \
	X(ERR_TRUNCATED, "output buffer too small")                                                \
	/* SPIFFE IDs */                                                                           \
	X(ERR_SPIFFE_EMPTY, "SPIFFE ID is empty")                                                  \
	X(ERR_SPIFFE_SCHEME, "SPIFFE ID must start with the scheme \"spiffe://\"")                 \
	X(ERR_SPIFFE_TOO_LONG, "SPIFFE ID is longer than 2048 bytes")                              \
	X(ERR_SPIFFE_TD_EMPTY, "SPIFFE ID has no trust domain")                                    \
	X(ERR_SPIFFE_TD_TOO_LONG, "trust domain is longer than 255 bytes")                         \
	X(ERR_SPIFFE_TD_CHAR,                                                                      \
	  "trust domain may contain only lowercase letters, digits, '.', '-' and '_'")             \
	X(ERR_SPIFFE_PORT, "trust domain must not contain a port")                                 \
	X(ERR_SPIFFE_USERINFO, "trust domain must not contain userinfo")                           \
	X(ERR_SPIFFE_QUERY, "SPIFFE ID must not contain a query")                                  \
	X(ERR_SPIFFE_FRAGMENT, "SPIFFE ID must not contain a fragment")                            \
	X(ERR_SPIFFE_PATH_CHAR,                                                                    \
	  "path segments may contain only letters, digits, '.', '-' and '_'")                      \
	X(ERR_SPIFFE_PATH_EMPTY_SEGMENT, "path must not contain an empty segment")                 \
	X(ERR_SPIFFE_PATH_DOT_SEGMENT, "path must not contain a '.' or '..' segment")              \
	X(ERR_SPIFFE_PATH_TRAILING_SLASH, "path must not end with '/'")                            \
	X(ERR_SPIFFE_PATH_NO_SLASH, "path must start with '/'")                                    \
	X(ERR_SPIFFE_NOT_K8S, "SPIFFE ID is not of the form spiffe://<td>/ns/<ns>/sa/<sa>")        \
	X(ERR_SPIFFE_NO_PATH, "SPIFFE ID has an empty path: it names no workload")                 \
	/* base64 */                                                                               \
	X(ERR_BASE64_CHAR, "base64 input contains a character outside its alphabet")               \
	X(ERR_BASE64_LENGTH, "base64 input has an impossible length")                              \
	X(ERR_BASE64_PADDING, "base64 input has wrong padding")                                    \
	X(ERR_BASE64_NONCANONICAL, "base64 input has non-zero trailing bits")                      \
	/* time */                                                                                 \
	X(ERR_TIME_SYNTAX, "not an RFC 3339 date-time (like 2026-01-02T15:04:05Z)")                \
	X(ERR_TIME_RANGE, "date-time field out of range")                                          \
	X(ERR_DURATION_SYNTAX, "not a duration (like 90s, 15m, 1h30m or 87600h)")                  \
	X(ERR_DURATION_RANGE, "duration too large")                                                \
	/* PEM, X.509 and keys */                                                                  \
	X(ERR_PEM_NO_CERT, "no PEM certificate found")                                             \
	X(ERR_PEM_BAD_CERT, "malformed PEM certificate")                                           \
	X(ERR_PEM_NO_KEY, "no PEM private key found")                                              \
	X(ERR_PEM_BAD_KEY, "malformed PEM private key")                                            \
	X(ERR_PEM_KEY_ENCRYPTED, "private key is encrypted; meshlet needs an unencrypted key")     \
	X(ERR_KEY_PERMISSIONS, "private key file is readable by group or others")                  \
	X(ERR_X509_NO_URI_SAN, "certificate has no URI subject alternative name")                  \
	X(ERR_X509_MANY_URI_SANS, "certificate has more than one URI subject alternative name")    \
	X(ERR_X509_BAD_SAN, "certificate's subject alternative name extension is malformed")       \
	X(ERR_X509_BAD_TIME, "certificate has a malformed validity date")                          \
	X(ERR_X509_KEY_MISMATCH, "certificate does not match the private key")                     \
	/* JWT and JWKS */                                                                         \
	X(ERR_JWT_MALFORMED, "token is not a well-formed JWT")                                     \
	X(ERR_JWT_ALG_NONE, "token is unsigned (alg \"none\")")                                    \
	X(ERR_JWT_ALG_HMAC, "token uses an HMAC algorithm, which is never accepted")               \
	X(ERR_JWT_ALG_UNSUPPORTED, "token uses an unsupported algorithm")                          \
	X(ERR_JWT_UNKNOWN_KID, "token's key id is not in the trusted key set")                     \
	X(ERR_JWT_SIGNATURE, "token signature does not verify")                                    \
	X(ERR_JWT_EXPIRED, "token has expired")                                                    \
	X(ERR_JWT_NOT_YET_VALID, "token is not valid yet")                                         \
	X(ERR_JWT_ISSUER, "token has the wrong issuer")                                            \
	X(ERR_JWT_AUDIENCE, "token is not meant for this audience")                                \
	X(ERR_JWT_NO_IDENTITY, "token names no Kubernetes service account")                        \
	X(ERR_JWKS_MALFORMED, "key set is not a valid JWKS")                                       \
	X(ERR_TOKENREVIEW_DENIED, "the Kubernetes API did not authenticate the token")             \
	X(ERR_TOKENREVIEW_UNAVAILABLE, "the Kubernetes API could not review the token")            \
	/* CSRs and signing */                                                                     \
	X(ERR_CSR_MALFORMED, "not a PEM certificate signing request")                              \
	X(ERR_CSR_SIGNATURE, "certificate signing request's signature does not verify")            \
	X(ERR_CSR_KEY, "certificate signing request's key is not allowed")                         \
	X(ERR_CSR_IDENTITY, "certificate signing request asks for another identity")               \
	X(ERR_SIGN_CA, "the signing CA cannot be used")                                            \
	X(ERR_SIGN_TTL, "requested lifetime is out of bounds")                                     \
	/* HTTP client */                                                                          \
	X(ERR_HTTPC_URL, "not a usable https:// URL")                                              \
	X(ERR_HTTPC_REQUEST, "HTTP request has a bad method or header")                            \
	X(ERR_HTTPC_CONNECT, "cannot reach the HTTP server, or the connection broke")              \
	X(ERR_HTTPC_TLS, "TLS with the HTTP server failed")                                        \
	X(ERR_HTTPC_TIMEOUT, "HTTP request timed out")                                             \
	X(ERR_HTTPC_PROTOCOL, "HTTP server sent a malformed or truncated response")                \
	X(ERR_HTTPC_TOO_LARGE, "HTTP response body is larger than the limit")                      \
	/* webhook */                                                                              \
	X(ERR_SETTINGS_QUANTITY, "not a Kubernetes resource quantity")                             \
	X(ERR_SETTINGS_PORTS, "not a list of port numbers")                                        \
	X(ERR_SETTINGS_CIDRS, "not a list of IP ranges in CIDR notation")                          \
	X(ERR_SETTINGS_SELECTOR, "not a label selector (key or key=value)")                        \
	X(ERR_SETTINGS_IMAGE, "not a container image reference")                                   \
	X(ERR_INJECT_BUNDLE, "trust bundle is not PEM certificate text")                           \
	X(ERR_INJECT_SETTINGS, "injector settings are invalid")                                    \
	X(ERR_PATCH_MALFORMED, "JSON Patch or JSON Pointer is malformed")                          \
	X(ERR_PATCH_PATH, "JSON Patch path does not exist in the document")                        \
	X(ERR_PATCH_TEST, "JSON Patch test operation failed")                                      \
	/* YAML */                                                                                 \
	X(ERR_YAML_TOO_LARGE, "YAML input is larger than 16 MiB")                                  \
	X(ERR_YAML_ENCODING, "YAML input is not valid UTF-8 text")                                 \
	X(ERR_YAML_SYNTAX, "not valid YAML")                                                       \
	X(ERR_YAML_TOO_DEEP, "YAML collections nest too deeply")                                   \
	X(ERR_YAML_ALIAS, "YAML alias names no anchor it may use")                                 \
	X(ERR_YAML_EXPANSION, "YAML aliases expand to too much data")                              \
	X(ERR_YAML_KEY, "YAML mapping key cannot become a JSON object key")                        \
	X(ERR_YAML_DUPLICATE_KEY, "YAML mapping has a duplicate key")                              \
	X(ERR_YAML_TAG, "YAML tag is unsupported or does not fit its value")                       \
	X(ERR_YAML_NUMBER, "YAML number cannot be represented in JSON")                            \
	X(ERR_YAML_MERGE, "YAML merge key (<<) needs a mapping or a list of mappings")             \
	X(ERR_YAML_EMIT, "value cannot be written as YAML")                                        \
	/* proxy */                                                                                \
	X(ERR_CAPTURE_FLAG, "bad meshlet-proxy init flag")                                         \
	X(ERR_CREDS_CHAIN, "certificate chain does not verify against the trust bundle")           \
	X(ERR_CREDS_NOT_LEAF, "certificate is a CA certificate, not a workload's")                 \
	X(ERR_CREDS_TRUST_DOMAIN, "SPIFFE ID is not in the trust domain")                          \
	X(ERR_CREDS_PEER_ID, "peer is not the expected SPIFFE ID")                                 \
	X(ERR_CREDS_NO_PEER, "peer presented no certificate")                                      \
	X(ERR_IDENTITY_CA, "meshlet-ca refused the certificate request")                           \
	X(ERR_IDENTITY_ANSWER, "meshlet-ca's answer is malformed or not for this workload")        \
	X(ERR_PREAMBLE_MAGIC, "tunnel preamble does not start with \"MSHL\"")                      \
	X(ERR_PREAMBLE_VERSION, "tunnel preamble has a version this proxy does not speak")         \
	X(ERR_PREAMBLE_FLAGS, "tunnel preamble sets flags this proxy does not know")               \
	X(ERR_PREAMBLE_TOO_LARGE, "tunnel preamble is longer than 256 bytes")                      \
	X(ERR_PREAMBLE_MALFORMED, "tunnel preamble is malformed")                                  \
	X(ERR_RELAY_LIMIT, "connection limit reached")                                             \
	X(ERR_RELAY_STALE, "kept tunnel closed by the peer before it took the stream")             \
	X(ERR_MUX_FRAME, "tunnel protocol 3 frame is malformed")                                   \
	X(ERR_MUX_DOWNGRADE, "peer does not speak tunnel protocol 3")                              \
	/* configuration */                                                                        \
	X(ERR_CONFIG_INVALID, "configuration has errors")                                          \
	X(ERR_CONFIG_SYNTAX, "configuration is not valid YAML")                                    \
	X(ERR_CONFIG_UNKNOWN_KEY, "unknown configuration key")

#define ERR_BASE 10000

enum err_index {
#define ERR_INDEX_(name, text) name##_INDEX_,
	ERR_TABLE(ERR_INDEX_)
#undef ERR_INDEX_
	    ERR_COUNT_
};

/* The codes themselves: ERR_INTERNAL is -10000, the next -10001, and so on. */
enum err_code {
#define ERR_VALUE_(name, text) name = -(ERR_BASE + name##_INDEX_),
	ERR_TABLE(ERR_VALUE_)
#undef ERR_VALUE_
};

/*
 * err_str - the message for a return code: one of ours, or -errno (as strerror words it).
 * Never NULL; the string is static, so any thread may call this.
 */
const char *err_str(int code);

/* err_name - the symbolic name of one of our codes ("ERR_SPIFFE_SCHEME"), or "errno". */
const char *err_name(int code);

/*
 * struct err - an error with its detail, for callers that must tell a user more than a
 * code can: which file, which mode, which field. Functions that take one fill it when
 * they fail (and leave it alone when they succeed); a NULL struct err is allowed.
 */
struct err {
	int code;
	char msg[512];
};

/*
 * err_set - record code and a printf-style detail in e (when e is not NULL).
 * Returns code, so that `return err_set(e, ERR_X, "...")` reads naturally.
 */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
