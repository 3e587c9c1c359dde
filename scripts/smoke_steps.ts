/**
 * PASS / FAIL lines for the macOS smoke scripts (GitHub's runners): each step runs, says how it
 * went, and a failure does not stop the ones after it, so one run tells everything.
 */
export class SmokeSteps {
  failed = 0;

  /** Run `f`; PASS with what it returns, or FAIL with its error. True when it passed. */
  step = async (name: string, f: () => unknown | Promise<unknown>): Promise<boolean> => {
    try {
      const info = await f();
      console.log(`PASS ${name}${info === undefined ? "" : `: ${info}`}`);
      return true;
    } catch (e) {
      this.failed++;
      console.log(`FAIL ${name}: ${e instanceof Error ? e.message : e}`);
      return false;
    }
  };

  /** The last line and the exit status. */
  finish(): never {
    console.log(this.failed ? `${this.failed} step(s) FAILED` : "all steps PASSED");
    Deno.exit(this.failed ? 1 : 0);
  }
}
