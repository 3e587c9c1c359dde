/**
 * What the SSM operations share: the JSON 1.1 error body, the fault an op throws, and reading
 * request members the way SSM validates them.
 */

export const JSON_TYPE = "application/x-amz-json-1.1";

/** Thrown inside an op; becomes the JSON error body the SDK turns into a named exception. */
export class SsmFault {
  constructor(readonly type: string, readonly message: string, readonly status = 400) {}
}

export function ssmError(type: string, message: string, status = 400): Response {
  return new Response(JSON.stringify({ __type: type, message }), {
    status,
    headers: { "content-type": JSON_TYPE, "x-amzn-requestid": crypto.randomUUID() },
  });
}

export type Body = Record<string, unknown>;
export function str(body: Body, key: string, required: true): string;
export function str(body: Body, key: string, required?: false): string | undefined;
export function str(body: Body, key: string, required = false): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) {
      throw new SsmFault(
        "ValidationException",
        `1 validation error detected: Value null at '${key[0].toLowerCase()}${
          key.slice(1)
        }' failed to satisfy constraint: Member must not be null`,
      );
    }
    return undefined;
  }
  if (typeof v !== "string") {
    throw new SsmFault("SerializationException", `${key} must be a string`);
  }
  return v;
}
