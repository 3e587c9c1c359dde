/**
 * Choosing a cluster when no NAME is given: headless through KUBECTL_SSM_HEADLESS_SELECTION
 * (the kube-ssm-proxy variable, kept for scripts), else a small fuzzy picker on the terminal.
 * Matching and rendering are pure; only `pickInteractive` touches the terminal.
 */
import type { ClusterEntry } from "../config/clusters.ts";
import { ExitCode, UserError } from "../errors.ts";

export const KILL_ALL = "kill_all";

export interface PickItem {
  /** An entry name, or KILL_ALL. */
  value: string;
  label: string;
}

export function pickItems(clusters: ClusterEntry[], connected: Set<string>): PickItem[] {
  return [
    { value: KILL_ALL, label: "[Kill all sessions]" },
    ...clusters.map((c) => ({
      value: c.name,
      label: `${connected.has(c.name) ? "●" : "○"} ${c.name}  (${c.environment}, ${c.region})${
        c.direct_connect ? "  [direct]" : ""
      }`,
    })),
  ];
}

/** Subsequence match, case-insensitive; lower is better, undefined is no match. */
export function fuzzyScore(query: string, text: string): number | undefined {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  let pos = -1;
  let score = 0;
  for (const ch of q) {
    const next = t.indexOf(ch, pos + 1);
    if (next < 0) return undefined;
    score += next - pos - 1; // gaps cost: contiguous matches rank first
    pos = next;
  }
  return score;
}

export function filterItems(items: PickItem[], query: string): PickItem[] {
  if (query === "") return items;
  return items
    .map((item) => ({ item, score: fuzzyScore(query, item.label) }))
    .filter((x) => x.score !== undefined)
    .sort((a, b) => a.score! - b.score!)
    .map((x) => x.item);
}

/** The headless choice, if any, checked against the known names. */
export function headlessSelection(
  env: Record<string, string | undefined>,
  names: string[],
): string | undefined {
  const sel = env.KUBECTL_SSM_HEADLESS_SELECTION;
  if (sel === undefined || sel === "") return undefined;
  if (sel !== KILL_ALL && !names.includes(sel)) {
    throw new UserError(
      `KUBECTL_SSM_HEADLESS_SELECTION=${sel} names no cluster (known: ${names.join(", ")}, ` +
        `or ${KILL_ALL})`,
      ExitCode.Usage,
    );
  }
  return sel;
}

/** Arrow keys move, typing filters, Enter picks, Esc or Ctrl-C cancels. */
export async function pickInteractive(items: PickItem[]): Promise<string> {
  if (!Deno.stdin.isTerminal()) {
    throw new UserError(
      "no cluster named and no terminal for the picker: pass NAME or set " +
        "KUBECTL_SSM_HEADLESS_SELECTION",
      ExitCode.Usage,
    );
  }
  const enc = new TextEncoder();
  const out = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  let query = "";
  let cursor = 0;
  let drawn = 0;
  const draw = () => {
    const shown = filterItems(items, query);
    cursor = Math.min(cursor, Math.max(0, shown.length - 1));
    out(`\x1b[${drawn}A\x1b[J`.repeat(drawn > 0 ? 1 : 0));
    const lines = [
      `cluster> ${query}`,
      ...shown.map((it, i) => `${i === cursor ? ">" : " "} ${it.label}`),
    ];
    out(lines.join("\r\n") + "\r\n");
    drawn = lines.length;
    return shown;
  };
  Deno.stdin.setRaw(true);
  try {
    let shown = draw();
    const buf = new Uint8Array(16);
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const key = new TextDecoder().decode(buf.subarray(0, n));
      if (key === "\r" || key === "\n") {
        if (shown[cursor]) return shown[cursor].value;
      } else if (key === "\x03" || key === "\x1b") break;
      else if (key === "\x1b[A") cursor = Math.max(0, cursor - 1);
      else if (key === "\x1b[B") cursor = Math.min(shown.length - 1, cursor + 1);
      else if (key === "\x7f" || key === "\b") query = query.slice(0, -1);
      else if (/^[\x20-\x7e]+$/.test(key)) query += key;
      shown = draw();
    }
  } finally {
    Deno.stdin.setRaw(false);
  }
  throw new UserError("no cluster chosen", ExitCode.Interrupted);
}
