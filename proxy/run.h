/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-proxy run`: the sidecar itself. */
#ifndef MESHLET_PROXY_RUN_H
#define MESHLET_PROXY_RUN_H

/* run_main - the run command; argv[0] is "run". Returns the exit status. */
int run_main(int argc, char **argv);

#endif
