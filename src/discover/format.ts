/** Discovery results as aligned `what  why` lines for the terminal. Pure. */

export interface Reasoned {
  cidr?: string;
  domain?: string;
  reason: string;
}

/** One line per item, the CIDR or domain padded to the widest; an item with neither is `-`. */
export function reasonLines(items: Reasoned[], indent = "  "): string[] {
  const key = (i: Reasoned) => i.cidr ?? i.domain ?? "-";
  const width = Math.max(0, ...items.map((i) => key(i).length));
  return items.map((i) => `${indent}${key(i).padEnd(width)}  ${i.reason}`);
}
