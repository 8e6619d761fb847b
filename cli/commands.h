/*
 * commands: the subcommands of the kiln binary. Each takes the arguments after its name and
 * returns the process exit status (0 ok, 1 failure, 2 usage error).
 */
#ifndef KILN_CLI_COMMANDS_H
#define KILN_CLI_COMMANDS_H

struct cli_command {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv);
};

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_engine(int argc, char **argv);
int cmd_frontend(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
