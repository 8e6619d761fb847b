/*
 * kiln: the command-line entry point. `kiln <subcommand> [flags]`; each subcommand lives
 * in its own cli/cmd_*.c and parses its own flags from a cfg table.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct cli_command commands[] = {
    {"serve", "serve a model over the OpenAI API: --model DIR [--port 8000]", cmd_serve},
    {"frontend", "one HTTP frontend in front of engines: --model DIR --engine ADDR",
     cmd_frontend},
    {"tokenize", "encode a JSON array of strings (stdin) to a JSON array of id arrays",
     cmd_tokenize},
    {"detokenize", "decode a JSON array of id arrays (stdin) to a JSON array of strings",
     cmd_detokenize},
    {"chat-template", "render TEMPLATE_FILE INPUT_JSON: a chat template, as transformers does",
     cmd_chat_template},
    {"generate", "run a model offline on the CPU: --model DIR --prompt TEXT", cmd_generate},
    {"engine", "serve a model to frontends over ZeroMQ: --model DIR [--addr ipc://...]",
     cmd_engine},
    {"bench", "benchmark a server: bench serve --tokenizer DIR --base-url URL [flags]",
     cmd_bench},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln <command> [flags]   (kiln <command> --help for its flags)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
