"""Serving overhead: the full websocket path (pipeline included) against a direct openai call.

Both talk to the same local OpenAI-compatible server with a fixed time to first token and
token rate, so the difference in time-to-first-token is what Spotter adds: guard, storing the
question, embedding the query, retrieval, context, the channel layer and the websocket.

    make bench                       # runs this under the embedded Postgres and Redis
    python bench/serving.py --rounds 3 --ttft-ms 200 --tokens-per-s 50
    python bench/serving.py --smoke    # tiny sizes, a fast fake LLM: checks that it runs, measures nothing

Levels: 1 chat, then the highest concurrency (50) three ways: back-to-back in a burst (every
chat asks in the same millisecond, the next round when all answers ended), back-to-back spread
over a second, and paced like people (each chat reads and thinks 2–8 s before its next question).
Prints the tables and ends with `RESULT overhead_p50_ms=… overhead_p99_ms=… tokens_per_s=…
cpu_ratio=…` for the paced 50 chats, followed by the burst's overheads (`burst_overhead_p50_ms=…`).
`cpu_ratio` is the pipeline's CPU per answer (ASGI server + PostgreSQL) over the direct client's
(the openai client in this process), both at that level: what Spotter costs per answer in units
of the cheapest way to stream one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import openai
import psutil
import websockets
from common import EXERCISES_MAPPING, ROOT, drop_database, exercises_file, parse_args, use_bench_database

from config.stack import WEBSOCKET_OPTIONS, asgi_env

# Questions as people ask them, three per exercise (2,619), in a fixed shuffled order: every query
# is embedded and searched for real, and none is asked twice in a run (each run has a fresh
# database), since a repeat would be answered from the answer cache and this benchmark measures
# the path that generates. Each table row counts the answers that were reused all the same. No
# run-unique marker is added to make them unique: it would lengthen what the query embedding runs
# over, a cost no visitor's question has.
QUESTIONS = [
    template.format(e["name"])
    for template in ["How do I do the {}?", "What muscles does the {} work?", "Any tips for the {}?"]
    for e in json.loads((ROOT / "demo" / "free-exercise-db" / "exercises.json").read_text())
]
random.Random(6).shuffle(QUESTIONS)
_asked = itertools.count()


def next_question() -> str:
    n = next(_asked)
    laps = n // len(QUESTIONS)  # only a run far longer than the default goes round again
    return QUESTIONS[n % len(QUESTIONS)] + (f" (take {laps + 1})" if laps else "")


BENCH_DB = "spotter_bench_serving"
ANSWER = " ".join("Keep your chest up and brace your core before each rep".split() * 3) + " [1]."
SMOKE = {"concurrency": [1, 4], "rounds": 1, "spread": 0.2, "think": [0.1, 0.3], "ttft_ms": 20.0,
         "tokens_per_s": 1000.0, "exercises": 10, "record_answers": 20}


@dataclass
class Sample:
    ttft_ms: float
    total_ms: float
    tokens: int
    reused: bool = False  # served from the answer cache (or an approved answer), not generated


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def direct_once(client: openai.AsyncOpenAI, question: str) -> Sample:
    began = time.perf_counter()
    ttft, tokens = None, 0
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": question}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
            ttft = ttft or time.perf_counter()
    end = time.perf_counter()
    return Sample((ttft - began) * 1000, (end - began) * 1000, tokens)


async def websocket_once(ws, question: str) -> Sample:
    """One question on a chat's open socket, in a new conversation (an opening question, as the
    answer cache sees it), timed from the send to the first token."""
    began = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "text": question}))
    ttft, tokens, frames = None, 0, []
    while True:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        except TimeoutError:
            raise RuntimeError(f"no frame for 30 s after {frames[-3:]}") from None
        frames.append(frame)
        if frame["type"] == "token":
            tokens += 1
            ttft = ttft or time.perf_counter()
        elif frame["type"] == "end":
            reused = frame.get("reuse", "none") != "none"
            break
        elif frame["type"] == "error":
            raise RuntimeError(frame)
    end = time.perf_counter()
    return Sample((ttft - began) * 1000, (end - began) * 1000, tokens, reused)


async def _after(delay: float, call):
    await asyncio.sleep(delay)
    return await call


@dataclass(frozen=True)
class Arrival:
    """How a level's chats ask: `back-to-back` rounds (every chat asks, all answers end, the next
    round), within a round all at once (`spread` 0) or each at a random moment within `spread`
    seconds; or `paced` like people: each chat reads the answer and thinks for a random
    `think` seconds before asking again, on its own clock."""

    spread: float = 0.0
    think: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        if self.think:
            return f"paced, {self.think[0]:g}–{self.think[1]:g} s between questions"
        return f"back-to-back, spread over {self.spread:g} s" if self.spread else "back-to-back, burst"


async def run_level(call, concurrency: int, rounds: int, arrival: Arrival) -> tuple[list[Sample], float]:
    """`rounds` questions from each of `concurrency` chats; `call(chat, question)` asks one."""
    began = time.perf_counter()
    if arrival.think:
        async def chat(index: int) -> list[Sample]:
            asked = []
            for _ in range(rounds):
                await asyncio.sleep(random.uniform(*arrival.think))
                asked.append(await call(index, next_question()))
            return asked

        samples = [s for asked in await asyncio.gather(*(chat(i) for i in range(concurrency))) for s in asked]
    else:
        samples = []
        for _ in range(rounds):
            samples.extend(await asyncio.gather(*(
                _after(random.uniform(0, arrival.spread), call(i, next_question())) for i in range(concurrency)
            )))
    return samples, time.perf_counter() - began


class CpuMeter:
    """CPU time per process role, so a row can say where each answer's milliseconds went."""

    def __init__(self, server: subprocess.Popen, llm: subprocess.Popen) -> None:
        self.roles = {"server": server.pid, "llm": llm.pid, "bench": os.getpid()}

    def _processes(self) -> dict[str, list[psutil.Process]]:
        found: dict[str, list[psutil.Process]] = {}
        for role, pid in self.roles.items():
            root = psutil.Process(pid)
            found[role] = [root, *root.children(recursive=True)] if role == "server" else [root]
        found["postgres"] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        found["redis"] = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis")]
        return found

    def snapshot(self) -> dict[str, float]:
        totals = {}
        for role, processes in self._processes().items():
            seconds = 0.0
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                seconds += times.user + times.system
            totals[role] = seconds
        return totals


async def measure(args: argparse.Namespace, llm_url: str, http_url: str, meter: CpuMeter) -> list[dict]:
    client = openai.AsyncOpenAI(base_url=llm_url, api_key="bench", max_retries=0)
    ws_url = http_url.replace("http", "ws", 1) + "/ws/chat/"
    async with httpx.AsyncClient() as http:
        tokens = [
            (await http.post(f"{http_url}/api/v1/visitors/")).json()["token"] for _ in range(max(args.concurrency))
        ]
    # One socket per chat, open for the whole run, as the widget keeps its own: a round is one
    # question from each chat. (The direct path reuses the openai client's connections likewise.)
    sockets = [await websockets.connect(ws_url + "?ticket=" + httpx.post(  # a one-use ticket per socket
        f"{http_url}/api/v1/visitors/ticket/", headers={"X-Visitor-Token": token}).json()["ticket"])
        for token in tokens]
    rows = []

    async def direct(chat: int, question: str) -> Sample:
        return await direct_once(client, question)

    async def over_websocket(chat: int, question: str) -> Sample:
        return await websocket_once(sockets[chat], question)

    # Warm both paths (connection pools, model, first queries) outside the measurement.
    for call in (direct, over_websocket):
        await run_level(call, len(sockets[:4]), 1, Arrival())
    levels = [(c, Arrival()) for c in args.concurrency if c == 1 or "burst" in args.arrivals]
    if args.spread > 0 and "spread" in args.arrivals:
        levels.append((max(args.concurrency), Arrival(spread=args.spread)))
    if args.think and max(args.think) > 0 and "paced" in args.arrivals:
        levels.append((max(args.concurrency), Arrival(think=tuple(args.think))))
    for concurrency, arrival in levels:
        rounds = args.rounds if concurrency > 1 else args.rounds * 10
        for path, call in (("direct openai", direct), ("websocket + pipeline", over_websocket)):
            before = meter.snapshot()
            samples, wall = await run_level(call, concurrency, rounds, arrival)
            after = meter.snapshot()
            rows.append({
                "cpu_ms": {role: (after[role] - before.get(role, 0.0)) * 1000 / len(samples) for role in after},
                "path": path, "concurrency": concurrency, "arrival": arrival.label, "n": len(samples),
                "reused": sum(s.reused for s in samples),
                "ttft_p50": pct([s.ttft_ms for s in samples], 0.5), "ttft_p99": pct([s.ttft_ms for s in samples], 0.99),
                "total_p50": pct([s.total_ms for s in samples], 0.5),
                "tokens_per_s": sum(s.tokens for s in samples) / wall, "ttfts": [s.ttft_ms for s in samples],
            })
    for ws in sockets:
        await ws.close()
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> dict[str, float]:
    print(f"\nServing: fake LLM ttft={args.ttft_ms:.0f} ms, {args.tokens_per_s:.0f} tokens/s, "
          f"{len(ANSWER.split())}-token answers; {args.workers} ASGI worker(s); {os.cpu_count()} cores\n")
    print("| path | concurrent chats | arrival | answers | of them reused | TTFT p50 ms | TTFT p99 ms "
          "| total p50 ms | tokens/s delivered |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['path']} | {r['concurrency']} | {r['arrival']} | {r['n']} | {r['reused']} | "
              f"{r['ttft_p50']:.1f} | {r['ttft_p99']:.1f} | {r['total_p50']:.1f} | {r['tokens_per_s']:.0f} |")
    print("\n| concurrent chats | arrival | added TTFT p50 ms | added TTFT p99 ms |")
    print("|---:|---|---:|---:|")
    results = {}
    for direct, full in zip(rows[::2], rows[1::2], strict=True):
        p50 = full["ttft_p50"] - direct["ttft_p50"]
        p99 = full["ttft_p99"] - direct["ttft_p99"]
        print(f"| {full['concurrency']} | {full['arrival']} | {p50:.1f} | {p99:.1f} |")
        results[(full["concurrency"], full["arrival"])] = {
            "overhead_p50_ms": p50, "overhead_p99_ms": p99, "tokens_per_s": full["tokens_per_s"],
            "cpu_ratio": cpu_ratio(direct, full)}
    roles = list(rows[0]["cpu_ms"])
    print("\nCPU ms per answer, by process (2 cores = 2,000 CPU ms a second between them)\n")
    print("| path | concurrent chats | arrival | " + " | ".join(roles) + " |")
    print("|---|---:|---|" + "---:|" * len(roles))
    for r in rows:
        print(f"| {r['path']} | {r['concurrency']} | {r['arrival']} | "
              + " | ".join(f"{r['cpu_ms'][role]:.1f}" for role in roles) + " |")
    for (concurrency, arrival), result in results.items():
        if "paced" in arrival:
            print(f"\nCPU per answer, pipeline (server + postgres) ÷ direct client (bench), {concurrency} chats "
                  f"{arrival}: {result['cpu_ratio']:.2f}")
    return results


def cpu_ratio(direct: dict, full: dict) -> float:
    """The pipeline's CPU per answer (ASGI server and PostgreSQL) over the direct client's."""
    pipeline = full["cpu_ms"]["server"] + full["cpu_ms"]["postgres"]
    return pipeline / direct["cpu_ms"]["bench"] if direct["cpu_ms"]["bench"] > 0 else float("nan")


def result_line(results: dict, args: argparse.Namespace) -> str:
    """The 50 chats paced like people first (when run), then the back-to-back burst, the stress case."""
    most = max(args.concurrency)
    burst = results.get((most, Arrival().label))
    main = results.get((most, Arrival(think=tuple(args.think)).label)) or burst or next(iter(results.values()))
    line = (f"RESULT overhead_p50_ms={main['overhead_p50_ms']:.1f} overhead_p99_ms={main['overhead_p99_ms']:.1f} "
            f"tokens_per_s={main['tokens_per_s']:.0f} cpu_ratio={main['cpu_ratio']:.2f}")
    if burst is not None and main is not burst:
        line += (f" burst_overhead_p50_ms={burst['overhead_p50_ms']:.1f}"
                 f" burst_overhead_p99_ms={burst['overhead_p99_ms']:.1f}")
    return line


def fact_write_cost(concurrency: int, writes: int, think: tuple[float, float]) -> dict[str, float]:
    """What recording an answer costs: the monitoring fact with its minute, hour and day rollups and the
    Prometheus updates, as the pipeline records it, against the bare fact row alone (what it was before
    rollups). Both written from as many threads as the pipeline has database threads (CHAT_DB_THREADS, the
    only threads that write facts), at the paced level's rate of answers. The pipeline records after the
    `end` frame is sent, so no visitor waits for it: this is database-thread time the other answers' steps
    share."""
    import threading
    import uuid
    from decimal import Decimal

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection

    from chat.finish import fact_record
    from monitoring.models import AnswerFact

    def fields() -> dict:
        return dict(message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status="complete", model="fake-model",
                    prompt_version_id=1, confidence=0.7, latency_ms=random.randint(300, 3000), ttft_ms=220,
                    tokens_in=900, tokens_out=60, cost=Decimal("0.000171"), language="en")

    threads_n = settings.CHAT_DB_THREADS
    # the paced level: each chat asks again (think) seconds after an answer of about one second
    pause = (sum(think) / 2 + 1.0) * threads_n / concurrency
    ways = {"fact row only": lambda: AnswerFact.objects.create(**fields()),
            "fact + rollups + metrics": lambda: fact_record(fields())}
    results = {}
    for name, write in ways.items():
        samples: list[float] = []

        def writer(seed: int, write=write, samples=samples) -> None:
            rng = random.Random(seed)
            for _ in range(writes // threads_n):
                time.sleep(rng.uniform(0.5, 1.5) * pause)
                began = time.perf_counter()
                write()
                samples.append(1000 * (time.perf_counter() - began))
            connection.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results[name] = {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99), "n": len(samples)}
    print(f"\nRecording an answer: {threads_n} database threads, one answer every {pause * 1000 / threads_n:.0f} ms "
          f"(the paced level's rate), in this process against the bench database\n")
    print("| write | answers | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['n']} | {r['p50']:.2f} | {r['p99']:.2f} |")
    added = {q: results["fact + rollups + metrics"][q] - results["fact row only"][q] for q in ("p50", "p99")}
    print(f"\nAdded by rollups and metrics: p50 {added['p50']:.2f} ms, p99 {added['p99']:.2f} ms")
    return {"record_p99_ms": results["fact + rollups + metrics"]["p99"], "record_added_p99_ms": added["p99"]}


def assignment_cost(concurrency: int, think: tuple[float, float], answers: int) -> dict[str, float]:
    """What picking an experiment arm adds to a question's route (before its first token): a running
    two-arm experiment against none, called at the paced level's rate of questions, so the per-process
    cache of running experiments expires and is read again from the database as often as it would be."""
    from experiments.assignment import arm_for_visitor, forget_running_experiments
    from experiments.models import PRODUCTION, Arm, Experiment
    from experiments.services import experiment_start, prompt_version_create

    pause = (sum(think) / 2 + 1.0) / concurrency

    def timed_calls() -> list[float]:
        forget_running_experiments()
        arm_for_visitor(visitor_id="warm-up", language="en")  # this thread's database connection, opened once
        samples = []
        for n in range(answers):
            time.sleep(pause)
            began = time.perf_counter()
            arm_for_visitor(visitor_id=f"bench-visitor-{n}", language="en")
            samples.append(1000 * (time.perf_counter() - began))
        return samples

    without = timed_calls()
    control = prompt_version_create(name="bench", system_prompt="Answer from the excerpts.", labels=[PRODUCTION])
    other = prompt_version_create(name="bench", system_prompt="Answer briefly from the excerpts.")
    experiment = Experiment.objects.create(name="bench")
    Arm.objects.create(experiment=experiment, name="a", prompt_version=control, is_control=True)
    Arm.objects.create(experiment=experiment, name="b", prompt_version=other)
    experiment_start(experiment=experiment)
    running = timed_calls()
    print(f"\nPicking an experiment arm: one question every {pause * 1000:.0f} ms (the paced level's rate)\n")
    print("| running experiments | questions | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, samples in (("none", without), ("one, two arms", running)):
        print(f"| {name} | {len(samples)} | {pct(samples, 0.5):.3f} | {pct(samples, 0.99):.3f} |")
    added = pct(running, 0.99) - pct(without, 0.99)
    print(f"\nAdded by a running experiment at p99: {added:.3f} ms")
    return {"assignment_added_p99_ms": added}


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter serving overhead benchmark")
    parser.add_argument("--ttft-ms", type=float, default=200)
    parser.add_argument("--tokens-per-s", type=float, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--rounds", type=int, default=4, help="rounds at each concurrency (x10 at 1)")
    parser.add_argument("--spread", type=float, default=1.0,
                        help="also run the highest concurrency with arrivals spread over this many seconds (0: off)")
    parser.add_argument("--think", type=float, nargs=2, default=[2.0, 8.0], metavar=("MIN", "MAX"),
                        help="also run the highest concurrency paced like people: each chat waits a random "
                             "MIN–MAX seconds after an answer before its next question (0 0: off)")
    parser.add_argument("--arrivals", nargs="+", choices=["burst", "spread", "paced"],
                        default=["burst", "spread", "paced"],
                        help="which ways the highest concurrency runs (the 1-chat level always runs)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")),
                        help="ASGI processes, as `make run` starts them")
    parser.add_argument("--exercises", type=int, default=None,
                        help="only the first N exercises in the knowledge base (default: all)")
    parser.add_argument("--record-answers", type=int, default=400,
                        help="answers recorded and arms picked for the cost of recording and of assignment")
    parser.add_argument("--keep-database", action="store_true",
                        help=f"leave {BENCH_DB} in place afterwards (to read the answers' step timings)")
    args = parse_args(parser, SMOKE)

    # A database of its own, fresh each run: the answer cache starts empty every time, so runs
    # compare (and the dev database is never touched).
    use_bench_database(BENCH_DB)
    llm_port, http_port = _free_port(), _free_port()
    llm_url, http_url = f"http://127.0.0.1:{llm_port}/v1", f"http://127.0.0.1:{http_port}"
    env = dict(os.environ, OPENAI_BASE_URL=llm_url, OPENAI_API_KEY="bench", LLM_MODEL="fake-model",
               LLM_PRICING='{"fake-model": [0.15, 0.60]}', LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
               # 50 chats from one address, as fast as the server answers: the limits for one visitor's
               # address would stop the benchmark, not measure the server.
               API_RATES='{"address": "100000/min", "visitor-create": "100000/hour", "visitor-ticket": "100000/min"}',
               CHAT_IP_MESSAGE_LIMIT="1000000", CHAT_SOCKET_MESSAGE_LIMIT="1000000",
               CHAT_VISITOR_MESSAGE_LIMIT="1000000", CHAT_SOCKET_FRAME_LIMIT="1000000", LLM_DAILY_SPEND_CAP_USD="0")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    with exercises_file(args.exercises) as exercises:
        subprocess.run([sys.executable, "manage.py", "ingest", str(exercises), "--mapping", str(EXERCISES_MAPPING),
                        "--source", "free-exercise-db", "-v", "0"], cwd=ROOT, env=env, check=True)
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--port", str(llm_port), "--ttft-ms",
                          str(args.ttft_ms), "--tokens-per-s", str(args.tokens_per_s), "--answer", ANSWER],
                         cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(http_port),
                          *WEBSOCKET_OPTIONS, "--no-access-log", "--log-level", "warning",
                          "--workers", str(args.workers)], cwd=ROOT, env=asgi_env(env)),
    ]
    try:
        _wait_http(f"{llm_url}/models")
        _wait_http(f"{http_url}/healthz")
        rows = asyncio.run(measure(args, llm_url, http_url, CpuMeter(server=procs[1], llm=procs[0])))
        recording = fact_write_cost(max(args.concurrency), args.record_answers, tuple(args.think))
        recording |= assignment_cost(max(args.concurrency), tuple(args.think), args.record_answers)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if not args.keep_database:
            drop_database(BENCH_DB)
    line = result_line(print_table(rows, args), args)
    print(f"\n{line} record_p99_ms={recording['record_p99_ms']:.2f} "
          f"record_added_p99_ms={recording['record_added_p99_ms']:.2f} "
          f"assignment_added_p99_ms={recording['assignment_added_p99_ms']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
