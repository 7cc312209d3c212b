"""The HTTP service of serve.py: a Starlette app over a Predictor, with dynamic micro-batching.

    POST /predict  {"texts": ["wake me up at seven am"]}  ->  {"predictions": [{...}]}
    GET  /health   200 once the model is loaded (the app is only served after it is), with the
                   requests, texts and model calls ("batches") this worker process has served

Every bad request is a 4xx with a one-line JSON body {"error": "..."} naming the field; a
prediction is never made from a text the Predictor would refuse (blank, or longer than the
model's window: refused, never cut).
"""
import asyncio
import contextlib
import copy
import json
import os
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route

SETTINGS_ENV = "KD_TRANSFER_SERVE"  # how serve.py hands its settings to worker processes


class RequestError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class MicroBatcher:
    """Requests that arrive together run as one model call of at most max_batch texts: a batch
    starts with the oldest waiting request and takes the next ones while they fit: those that
    queued while the last call ran, and those that arrive within max_wait_ms (0: none). A request
    is never split, so max_batch 1 runs each one alone (batching off). One call runs at a time;
    ONNX Runtime's threads do the parallel work."""

    def __init__(self, predict, max_batch, max_wait_ms):
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000
        self.queue = asyncio.Queue()
        self.carried = None  # a request that did not fit the last batch: it starts the next one
        self.counts = {"requests": 0, "texts": 0, "batches": 0}  # this process's, since it started
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")

    async def submit(self, texts):
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((texts, future))
        return await future

    async def next_batch(self):
        loop = asyncio.get_running_loop()
        batch = [self.carried or await self.queue.get()]
        self.carried, size, deadline = None, len(batch[0][0]), loop.time() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - loop.time()
            try:
                item = self.queue.get_nowait() if not self.queue.empty() or remaining <= 0 else \
                    await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if size + len(item[0]) > self.max_batch:
                self.carried = item
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.next_batch()
            self.counts["batches"] += 1
            self.counts["requests"] += len(batch)
            self.counts["texts"] += sum(len(texts) for texts, _ in batch)
            try:
                results = await loop.run_in_executor(self.executor, self.predict, [t for texts, _ in batch for t in texts])
            except Exception as err:  # noqa: BLE001  each waiting request gets it, the loop serves on
                results = err
            start = 0
            for texts, future in batch:
                if not future.done():  # a client that went away leaves a cancelled future
                    if isinstance(results, Exception):
                        future.set_exception(results)
                    else:
                        future.set_result(results[start:start + len(texts)])
                start += len(texts)


async def read_body(request, limit):
    """The body, refused with 413 as soon as it passes limit bytes. It is read up to the limit even
    when Content-Length already says it is over: answering before the client has sent it would
    hand the client a broken pipe instead of the 413."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the body is over the {limit}-byte limit (--max-body-kb)")
    return bytes(body)


def parse_texts(body, predictor, max_texts, tokenizer):
    """The request's texts, or a RequestError naming what is wrong with them."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, f"the body is not JSON ({err})") from None
    if not isinstance(payload, dict) or "texts" not in payload:
        raise RequestError(422, 'the body needs a "texts" field: {"texts": ["an utterance", ...]}')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f'"texts" must be a list of strings, not {type(texts).__name__}')
    wrong = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if wrong is not None:
        raise RequestError(422, f'texts[{wrong}] must be a string, not {type(texts[wrong]).__name__}')
    if not texts:
        raise RequestError(422, '"texts" is empty: nothing to predict')
    if len(texts) > max_texts:
        raise RequestError(413, f'"texts" has {len(texts)} texts, more than the {max_texts} a request may hold '
                                "(--max-texts)")
    blank = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if blank is not None:
        raise RequestError(422, f"texts[{blank}] is blank: nothing to predict")
    long = predictor.too_long(texts, tokenizer)
    if long:
        raise RequestError(422, f"texts[{long[0]}] has {long[1]} tokens, more than the model's {predictor.max_length}-"
                                "token window (refused, never cut): split it")
    return texts


def build_app(predictor, settings):
    """The ASGI app over a loaded Predictor; settings: max_batch, max_wait_ms, max_texts, max_body_kb."""
    batcher = MicroBatcher(predictor.records, settings["max_batch"], settings["max_wait_ms"])
    limit = settings["max_body_kb"] * 1024
    tokenizer = copy.deepcopy(predictor.model.tokenizer)  # the event loop's own: the model thread uses the other

    async def predict(request):
        try:
            texts = parse_texts(await read_body(request, limit), predictor, settings["max_texts"], tokenizer)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        return JSONResponse({"predictions": await batcher.submit(texts)})

    async def health(request):
        return JSONResponse({"status": "ok", "task": predictor.task, "model": settings["model"], "pid": os.getpid(),
                             **batcher.counts})

    async def http_error(request, err):  # 404, 405: one JSON line too, not Starlette's plain text
        return JSONResponse({"error": f"{request.method} {request.url.path}: {err.detail}"}, status_code=err.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.executor.shutdown(wait=True)

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"])],
                     exception_handlers={HTTPException: http_error}, lifespan=lifespan)


def create_app():
    """The app of one worker process (uvicorn --workers): each loads its own model."""
    from common.inference import Predictor
    settings = json.loads(os.environ[SETTINGS_ENV])
    predictor = Predictor(settings["model"], settings["threads"], settings["max_length"], settings["model_batch"])
    return build_app(predictor, settings)
