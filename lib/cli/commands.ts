/**
 * The command registry of the `ditflow` CLI. Built-in commands (run, status, dag, show, gc, exec-stage)
 * register themselves here; other modules can add theirs (e.g. `info`) with {@link registerCommand} and
 * be imported from `lib/cli/main.ts`.
 * @module
 */

/** A subcommand. */
export interface Command {
  name: string;
  /** One line for the help text. */
  summary: string;
  /** Usage line(s), e.g. `run FILE [--set k=v]...`. */
  usage: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

const commands = new Map<string, Command>();

/** Registers a subcommand (a later registration with the same name replaces the earlier one). */
export function registerCommand(cmd: Command): void {
  commands.set(cmd.name, cmd);
}

/** The registered command called `name`. */
export function getCommand(name: string): Command | undefined {
  return commands.get(name);
}

/** All registered commands, sorted by name. */
export function listCommands(): Command[] {
  return [...commands.values()].sort((a, b) => a.name < b.name ? -1 : 1);
}

/** Exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  stageFailed: 1,
  invalid: 2,
  interrupted: 130,
} as const;
