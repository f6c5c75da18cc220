/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-webhook inject`: offline injection into manifests. */
#ifndef MESHLET_WEBHOOK_OFFLINE_H
#define MESHLET_WEBHOOK_OFFLINE_H

/* offline_main - the inject command; argv[0] is "inject". Returns the exit status. */
int offline_main(int argc, char **argv);

#endif
