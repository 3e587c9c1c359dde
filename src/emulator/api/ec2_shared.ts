/**
 * What every EC2 Describe operation shares: the fault an op throws, `Filter.N` predicates with
 * EC2's tag filters and wildcards, and MaxResults/NextToken paging.
 */

import { indexedList, type QueryFilter, type QueryParams } from "./query.ts";
import { globMatch } from "./world.ts";

/** Thrown inside an op; handleEc2 turns it into EC2's `<Response><Errors>` body. */
export class Ec2Fault {
  constructor(readonly code: string, readonly message: string, readonly status = 400) {}
}

export type Pred<T> = (x: T) => boolean;

/** A resource's value for a filter name: one value, several (any may match), or none. */
export type FieldOf<T> = (x: T) => string | readonly string[] | undefined;

export function allTags(
  i: { name?: string; tags: Record<string, string> },
): Record<string, string> {
  return i.name === undefined ? i.tags : { Name: i.name, ...i.tags };
}

/** Filters shared by every resource; `fields` adds the resource's own filter names. */
export function filterPred<T extends { tags: Record<string, string>; name?: string }>(
  f: QueryFilter,
  fields: Record<string, FieldOf<T>>,
): Pred<T> {
  const one = (v: string | undefined) => v !== undefined && f.values.some((p) => globMatch(p, v));
  const any = (v: string | readonly string[] | undefined) =>
    typeof v === "string" || v === undefined ? one(v) : v.some(one);
  if (f.name.startsWith("tag:")) return (x) => any(allTags(x)[f.name.slice(4)]);
  if (f.name === "tag-key") return (x) => any(Object.keys(allTags(x)));
  if (f.name === "tag-value") return (x) => any(Object.values(allTags(x)));
  const field = fields[f.name];
  if (!field) throw new Ec2Fault("InvalidParameterValue", `The filter '${f.name}' is invalid`);
  return (x) => any(field(x));
}

/**
 * `Ids.N` must all exist (`what` names the resource in EC2's NotFound code and message, e.g.
 * `RouteTable` → InvalidRouteTableID.NotFound "The routeTable ID '…' does not exist").
 */
export function selectByIds<T extends { id: string }>(
  all: T[],
  ids: string[],
  what: string,
): T[] {
  if (ids.length === 0) return all;
  const missing = ids.find((id) => !all.some((x) => x.id === id));
  if (missing !== undefined) {
    const lower = what[0].toLowerCase() + what.slice(1);
    throw new Ec2Fault(`Invalid${what}ID.NotFound`, `The ${lower} ID '${missing}' does not exist`);
  }
  return all.filter((x) => ids.includes(x.id));
}

/**
 * One page of `items` and the token for the next. EC2 refuses MaxResults together with
 * explicit ids, and outside `min`..1000.
 */
export function pageOf<T>(
  p: QueryParams,
  items: T[],
  idsKey: string,
  min = 5,
): { page: T[]; next?: string } {
  const rawMax = p.get("MaxResults");
  const rawToken = p.get("NextToken");
  if (rawMax === undefined && rawToken === undefined) return { page: items };
  if (rawMax !== undefined && indexedList(p, idsKey).length > 0) {
    throw new Ec2Fault(
      "InvalidParameterCombination",
      `The parameter ${idsKey}s cannot be used with the parameter maxResults`,
    );
  }
  const max = rawMax === undefined ? 1000 : Number(rawMax);
  if (!Number.isInteger(max) || max < min || max > 1000) {
    throw new Ec2Fault(
      "InvalidParameterValue",
      `Value ( ${rawMax} ) for parameter maxResults is invalid. Expecting a value between ` +
        `${min} and 1000.`,
    );
  }
  let start = 0;
  if (rawToken !== undefined) {
    const n = /^emu-[0-9]+$/.test(rawToken) ? Number(rawToken.slice(4)) : NaN;
    if (!Number.isInteger(n) || n > items.length) {
      throw new Ec2Fault("InvalidPaginationToken", `Invalid pagination token: ${rawToken}`);
    }
    start = n;
  }
  const end = start + max;
  return { page: items.slice(start, end), ...(end < items.length ? { next: `emu-${end}` } : {}) };
}
