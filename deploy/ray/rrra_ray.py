"""Runs the part tasks of an rrra plan as Ray Core tasks.

`cargo xtask run FILE --executor ray [--address ADDR]` calls this after each plan:

    python deploy/ray/rrra_ray.py INDEX --exec XTASK [--address ADDR] [--num-cpus N]

Each line of INDEX is a task.json; each becomes one Ray task asking for the task's
resources (`num_cpus`, `num_gpus`, `memory`; Ray sets CUDA_VISIBLE_DEVICES per task) that
runs `XTASK exec-part TASK.json`. A task that fails (its process or the Ray worker running
it killed, a non-zero exit) is retried up to --max-retries times: exec-part is idempotent
and a part file exists only complete; the exec-part of a killed worker dies with it. Progress goes to stderr; the exit status is 0 when every part is done.
"""

import argparse
import ctypes
import json
import signal
import subprocess
import sys
import time

import ray


def _dying_with_parent():
    """A `preexec_fn` (Linux; else None) after which the child is killed when the process
    that started it dies: a killed Ray worker leaves no orphan computing its part beside
    Ray's retry. prctl is looked up here, before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


@ray.remote
def exec_part(binary, task):
    """Runs one part; raises (so Ray retries) when exec-part fails or is killed. When the
    worker itself dies (killed, its node lost), Ray retries the task as a system failure."""
    start = time.time()
    with subprocess.Popen(
        [binary, "exec-part", task],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_dying_with_parent(),
    ) as proc:
        _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{task}: exec-part exited {proc.returncode}\n{stderr[-4000:]}")
    return task, time.time() - start, proc.pid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", help="the plan's index file: one task.json a line")
    ap.add_argument("--exec", required=True, help="the rrra binary (xtask) to run exec-part with")
    ap.add_argument("--address", help="a running Ray cluster (default: start a local one)")
    ap.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    ap.add_argument("--max-retries", type=int, default=3, help="retries of a failed part")
    args = ap.parse_args()

    with open(args.index) as f:
        tasks = [line.strip() for line in f if line.strip()]
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)

    start = time.time()
    refs = {}
    for task in tasks:
        with open(task) as f:
            res = json.load(f)["resources"]
        options = {
            "num_cpus": res["cpus"],
            "num_gpus": res["gpus"],
            "max_retries": args.max_retries,
            "retry_exceptions": True,
        }
        if res.get("memory_mb"):
            options["memory"] = res["memory_mb"] * 1024 * 1024
        refs[exec_part.options(**options).remote(args.exec, task)] = task

    pending = list(refs)
    finished = 0
    failed = []
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            try:
                task, seconds, pid = ray.get(ref)
                finished += 1
                print(
                    f"  ray: part {finished}/{len(tasks)} done in {seconds:.2f}s "
                    f"by exec-part pid {pid} ({task})",
                    file=sys.stderr,
                    flush=True,
                )
            except Exception as e:  # the task failed after every retry
                failed.append(refs[ref])
                print(f"  ray: {refs[ref]} failed: {e}", file=sys.stderr, flush=True)
    print(
        f"  ray: {finished} of {len(tasks)} parts done in {time.time() - start:.2f}s",
        file=sys.stderr,
        flush=True,
    )
    ray.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
