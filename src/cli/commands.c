/* The table of `sinew` subcommands. A new subcommand is one file in
 * src/cli/ with its sn_cli_<name> function, and one line here. */
#include <stdio.h>
#include <string.h>

#include "sinew/cli.h"

const struct sn_cli_cmd sn_cli_commands[] = {
	{ "load", "generate HTTP load at a fixed rate and report latency (open loop)", sn_cli_load },
	{ "version", "print the version", sn_cli_version },
	{ NULL, NULL, NULL },
};

const struct sn_cli_cmd *sn_cli_find(const char *name)
{
	for (const struct sn_cli_cmd *c = sn_cli_commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int sn_cli_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("sinew %s\n", SINEW_VERSION);
	return 0;
}
