/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-proxy policy`: check policy files, explain a decision. */
#ifndef MESHLET_PROXY_POLICY_CMD_H
#define MESHLET_PROXY_POLICY_CMD_H

/* policy_cmd_main - argv[0] is "policy"; returns the exit status. */
int policy_cmd_main(int argc, char **argv);

#endif
