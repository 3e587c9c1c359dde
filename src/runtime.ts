/**
 * V8 flags every ssm-proxy process runs with, compiled into the binaries and passed when run
 * from source. A 1 MiB young generation keeps the data path's short-lived buffers from growing
 * the heap: measured in the lab, client RSS under a 100 MB transfer fell from ~200 MB to ~126 MB
 * with no loss of throughput.
 */
export const V8_FLAGS = "--max-semi-space-size=1";
