/**
 * The AWS Query and EC2 Query wire formats: flattened form parameters in, XML out.
 */

export type QueryParams = Map<string, string>;

export function parseQuery(body: string): QueryParams {
  return new Map(new URLSearchParams(body));
}

/** `Prefix.1`, `Prefix.2`, … in index order (EC2 lists are 1-based and may skip numbers). */
export function indexedList(p: QueryParams, prefix: string): string[] {
  const found: [number, string][] = [];
  const re = new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.(\\d+)$`);
  for (const [k, v] of p) {
    const m = re.exec(k);
    if (m) found.push([Number(m[1]), v]);
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

export interface QueryFilter {
  name: string;
  values: string[];
}

/** `Filter.N.Name` with `Filter.N.Value.M`. */
export function queryFilters(p: QueryParams): QueryFilter[] {
  const out: QueryFilter[] = [];
  for (const [k, name] of p) {
    const m = /^Filter\.(\d+)\.Name$/.exec(k);
    if (m) out.push({ name, values: indexedList(p, `Filter.${m[1]}.Value`) });
  }
  return out;
}

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** A leaf or nested element; string children are escaped, arrays are concatenated. */
export type Xml = string | number | boolean | undefined | XmlNode | Xml[];
export interface XmlNode {
  readonly xml: string;
}

export function el(name: string, ...children: Xml[]): XmlNode {
  return { xml: `<${name}>${children.map(render).join("")}</${name}>` };
}

/** EC2's list shape: `<name><item>…</item>…</name>`. */
export function itemSet(name: string, items: Xml[]): XmlNode {
  return el(name, items.map((i) => el("item", i)));
}

export function tagSet(tags: Record<string, string>): XmlNode {
  return itemSet(
    "tagSet",
    Object.entries(tags).map(([k, v]) => [el("key", k), el("value", v)]),
  );
}

function render(x: Xml): string {
  if (x === undefined) return "";
  if (Array.isArray(x)) return x.map(render).join("");
  if (typeof x === "object") return x.xml;
  return esc(String(x));
}

export function xmlResponse(
  root: string,
  ns: string | undefined,
  status: number,
  ...body: Xml[]
): Response {
  const attr = ns ? ` xmlns="${ns}"` : "";
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${attr}>${
    body.map(render).join("")
  }</${root}>`;
  return new Response(text, { status, headers: { "content-type": "text/xml;charset=UTF-8" } });
}
