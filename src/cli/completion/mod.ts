/** `ssm-proxy completion <shell>`: the completion script for a shell, from the command tree. */
import type { CommandUnknownOpts } from "@commander-js/extra-typings";
import { bashScript } from "./bash.ts";
import { fishScript } from "./fish.ts";
import { commandTree } from "./tree.ts";
import { zshScript } from "./zsh.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

export function completionScript(shell: Shell, program: CommandUnknownOpts): string {
  const tree = commandTree(program);
  switch (shell) {
    case "bash":
      return bashScript(tree);
    case "zsh":
      return zshScript(tree);
    case "fish":
      return fishScript(tree);
  }
}

export async function printCompletion(shell: Shell, program: CommandUnknownOpts): Promise<void> {
  const bytes = new TextEncoder().encode(completionScript(shell, program));
  for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
}
