/* sinew: the command line. Dispatches to the subcommands of src/cli/. */
#include <stdio.h>
#include <string.h>

#include "sinew/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew COMMAND [options]\n"
		"\n"
		"Sinew's command line.\n"
		"\n"
		"Commands:\n");
	for (const struct sn_cli_cmd *c = sn_cli_commands; c->name != NULL; c++)
		fprintf(f, "  %-13s %s\n", c->name, c->summary);
	fprintf(f,
		"\n"
		"`sinew COMMAND --help` (or `sinew help COMMAND`) describes a command.\n");
}

int main(int argc, char **argv)
{
	const struct sn_cli_cmd *cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return sn_cli_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		cmd = sn_cli_find(argv[2]);
		if (cmd == NULL) {
			fprintf(stderr, "sinew: no command \"%s\"; `sinew --help` lists them\n", argv[2]);
			return 2;
		}
		char *help_argv[] = { argv[2], (char *)"--help", NULL };
		return cmd->run(2, help_argv);
	}
	cmd = sn_cli_find(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "sinew: no command \"%s\"; `sinew --help` lists them\n", argv[1]);
		return 2;
	}
	return cmd->run(argc - 1, argv + 1);
}
