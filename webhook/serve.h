/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-webhook serve`: run the admission endpoint until SIGTERM or SIGINT. */
#ifndef MESHLET_WEBHOOK_SERVE_H
#define MESHLET_WEBHOOK_SERVE_H

/* serve_main - the serve command; argv[0] is "serve". Returns the exit status. */
int serve_main(int argc, char **argv);

#endif
