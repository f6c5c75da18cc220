/* SPDX-License-Identifier: Apache-2.0 */
/* Where the proxy's SVID comes from: meshlet-ca (renewed in the background) or files. */
#ifndef MESHLET_PROXY_IDENTITY_H
#define MESHLET_PROXY_IDENTITY_H

#include <stdint.h>

#include "meshlet/err.h"

#include "creds.h"

/* One request to meshlet-ca may take this long (connect, TLS, answer), in milliseconds. */
#define IDENTITY_CA_TIMEOUT_MS 5000
/* Retries after a failed request wait 1 s, 2 s, 4 s ... up to this, in milliseconds. */
#define IDENTITY_BACKOFF_MIN_MS 1000
#define IDENTITY_BACKOFF_MAX_MS 30000
/* Files mode looks at the files this often, in milliseconds. */
#define IDENTITY_POLL_MS 1000
/* The largest token file read. */
#define IDENTITY_TOKEN_MAX (64 * 1024)

enum identity_mode { IDENTITY_CA, IDENTITY_FILES };

/* The strings are copied by identity_start; the caller keeps its own. */
struct identity_options {
	enum identity_mode mode;
	/* ca mode */
	const char *ca_url;         /* "https://host:port" of meshlet-ca (a path is ignored) */
	const char *ca_server_name; /* name the CA's certificate must carry; NULL: the URL's host */
	const char *token_file;     /* projected service-account token, read for each request */
	const char *trust_bundle_pem; /* roots (PEM text) that the CA's certificate must chain to */
	const char *trust_domain, *namespace_, *service_account; /* the ID asked for */
	int64_t ttl;                                             /* seconds; 0: the CA's default */
	/* files mode */
	const char *cert_file, *key_file, *bundle_file;
	/*
	 * Both modes, optional: after each install, write svid.pem (chain), svid-key.pem
	 * (0600) and bundle.pem into this existing directory, each file replaced atomically,
	 * in the order bundle, key, certificate.
	 */
	const char *output_dir;
};

/*
 * struct identity - one background thread that keeps creds holding a valid SVID.
 *
 * ca mode: the thread makes a new EC P-256 key and a CSR (SHA-256) for
 * spiffe://<trust_domain>/ns/<namespace_>/sa/<service_account> as its one URI SAN, POSTs
 * it to <ca_url>/v1/certify with "Authorization: Bearer <token>" (the token file is read
 * again for each request), checks the answer (the leaf carries our key and our ID) and
 * installs it with the answer's trust_bundle as roots. The first request goes out at
 * once; until one succeeds creds stay not ready. A new SVID is asked for when half of its
 * remaining lifetime (from when it arrived to notAfter) has passed, give or take 10%
 * of that half, and never sooner than 1 s. A failure is logged (one line, with the
 * reason), counted and retried after IDENTITY_BACKOFF_MIN_MS, doubling up to
 * IDENTITY_BACKOFF_MAX_MS, each wait drawn from 80% to 120% of the step (a Retry-After
 * from the CA is honoured within those bounds); the current SVID keeps serving meanwhile.
 *
 * files mode: the three files must load and install at start (identity_start fails with
 * a message naming the file otherwise). The thread checks them every IDENTITY_POLL_MS and
 * installs them again when any of them changed (device, inode, size, mtime or ctime, of
 * the file a symlink leads to); a set that does not load or install is logged once and
 * the current SVID stays.
 *
 * Keys are made and held in memory only (and in output_dir when asked); neither keys nor
 * tokens are ever logged.
 */
struct identity;

/*
 * identity_start - check o, load the files (files mode), and start the thread that
 * keeps c up to date. c must outlive the identity. Returns NULL with e filled: -EINVAL
 * for a missing or bad option (the message names it), the errors of the files (files
 * mode), ERR_HTTPC_URL, the errors of httpc_tls_new for the trust bundle, -ENOMEM, or
 * -errno when the thread cannot start.
 */
struct identity *identity_start(const struct identity_options *o, struct creds *c, struct err *e);

/*
 * identity_stop - wake the thread, wait for it and free id (NULL is allowed). A request
 * to the CA in flight is not interrupted: this may wait up to IDENTITY_CA_TIMEOUT_MS.
 */
void identity_stop(struct identity *id);

/* identity_ca_errors - failed attempts so far (requests to the CA, or file reloads). */
uint64_t identity_ca_errors(struct identity *id);

#endif
