/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-ca serve`: run the certificate API until SIGTERM or SIGINT. */
#ifndef MESHLET_CA_SERVE_H
#define MESHLET_CA_SERVE_H

/* serve_main - the serve command; argv[0] is "serve". Returns the exit status. */
int serve_main(int argc, char **argv);

#endif
