/**
 * The command tree as the completion scripts see it: walked from commander's own objects, so a
 * new command, flag or choice shows up in every shell without touching the generators. Pure.
 */
import type { CommandUnknownOpts, Option } from "@commander-js/extra-typings";

/** Values printed at completion time by `ssm-proxy __complete <kind>`. */
export type DynamicKind = "tunnels" | "clusters" | "running";
export const DYNAMIC_KINDS: readonly DynamicKind[] = ["tunnels", "clusters", "running"];

/** What may follow a flag or fill a positional slot. */
export type ValueSpec =
  | { kind: "none" } // a boolean flag
  | { kind: "free" } // anything: the shell offers nothing
  | { kind: "files" }
  | { kind: "choices"; values: string[] }
  | { kind: "dynamic"; source: DynamicKind };

export interface OptionSpec {
  long?: string;
  short?: string;
  description: string;
  value: ValueSpec;
}

export interface CommandSpec {
  /** Words from the program to this command: [] for the program, ["eks", "connect"]. */
  path: string[];
  name: string;
  description: string;
  /** Own options and those of every ancestor (commander accepts them after a subcommand). */
  options: OptionSpec[];
  subcommands: CommandSpec[];
  /** What each positional argument takes, in order. */
  args: ValueSpec[];
  /** The last positional argument repeats. */
  variadic: boolean;
}

/**
 * Positional arguments whose values live elsewhere (config, state files), by command path.
 * A command listed here without a declared argument still completes: it is the one argument.
 */
export const DYNAMIC_ARGS: Record<string, DynamicKind> = {
  "start": "tunnels",
  "status": "tunnels",
  "config publish": "tunnels",
  "stop": "running",
  "eks connect": "clusters",
  "eks disconnect": "clusters",
};

/**
 * Flags whose values the command checks itself rather than with commander's `.choices()`
 * (which is picked up on its own). Keyed by long flag, or by "path --flag" where it differs.
 */
export const FLAG_CHOICES: Record<string, string[]> = {
  "--mode": ["agent", "agentless", "auto"],
};

/** A value placeholder like `<file>` or `<path>` means the shell should offer files. */
const FILE_PLACEHOLDER = /[<[](file|path|dir|directory)[\]>]/i;

export function commandTree(program: CommandUnknownOpts): CommandSpec {
  return walk(program, [], []);
}

function walk(cmd: CommandUnknownOpts, path: string[], inherited: OptionSpec[]): CommandSpec {
  const help = cmd.createHelp();
  const own = help.visibleOptions(cmd).map((o) => optionSpec(o, path));
  // The version flag belongs to the program alone; -h/--help is already in every own list.
  const fromParents = inherited.filter((p) =>
    p.long !== "--version" &&
    !own.some((o) => o.long === p.long || (o.short && o.short === p.short))
  );
  const options = [...own, ...fromParents];
  const key = path.join(" ");
  const declared = cmd.registeredArguments.map((a): ValueSpec =>
    a.argChoices ? { kind: "choices", values: [...a.argChoices] } : { kind: "free" }
  );
  const dynamic = DYNAMIC_ARGS[key];
  const args = dynamic
    ? [{ kind: "dynamic", source: dynamic } as ValueSpec, ...declared.slice(1)]
    : declared;
  const visible = help.visibleCommands(cmd);
  const subcommands = visible.map((c) =>
    // commander's implicit `help` command takes the name of a sibling, not options of its own.
    cmd.commands.includes(c) ? walk(c, [...path, c.name()], options) : {
      path: [...path, c.name()],
      name: c.name(),
      description: c.description(),
      options: [],
      subcommands: [],
      variadic: false,
      args: [{
        kind: "choices",
        values: visible.filter((v) => v !== c).map((v) => v.name()),
      } as ValueSpec],
    }
  );
  const variadic = cmd.registeredArguments.at(-1)?.variadic ?? false;
  return {
    path,
    name: cmd.name(),
    description: cmd.description(),
    options,
    subcommands,
    args,
    variadic,
  };
}

function optionSpec(o: Option, path: string[]): OptionSpec {
  const spec: OptionSpec = { description: o.description, value: valueOf(o, path) };
  if (o.long) spec.long = o.long;
  if (o.short) spec.short = o.short;
  return spec;
}

function valueOf(o: Option, path: string[]): ValueSpec {
  if (!o.required && !o.optional) return { kind: "none" };
  const hinted = FLAG_CHOICES[`${path.join(" ")} ${o.long}`] ?? FLAG_CHOICES[o.long ?? ""];
  if (o.argChoices) return { kind: "choices", values: [...o.argChoices] };
  if (hinted) return { kind: "choices", values: [...hinted] };
  if (FILE_PLACEHOLDER.test(o.flags)) return { kind: "files" };
  return { kind: "free" };
}

/** Every command of the tree, the program first, parents before children. */
export function flatten(tree: CommandSpec): CommandSpec[] {
  return [tree, ...tree.subcommands.flatMap(flatten)];
}

/** The option's names, long first: ["--target", "-t"]. */
export function optionNames(o: OptionSpec): string[] {
  return [o.long, o.short].filter((n): n is string => !!n);
}

/** Flags that consume the next word (the scripts skip their values when finding the command). */
export function takesValue(o: OptionSpec): boolean {
  return o.value.kind !== "none";
}

/** A word for a shell script, single-quoted (POSIX, zsh and fish all read '…' literally but \'). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** First line of a description, without what would break a one-line script string. */
export function oneLine(s: string): string {
  return s.split("\n")[0].replace(/\s+/g, " ").trim();
}
