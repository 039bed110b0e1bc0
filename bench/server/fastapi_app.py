"""FastAPI + uvicorn + fastText-Python baseline for bench/server.sh.

Serves one fastText .bin/.ftz (path in the environment variable FT_MODEL) with
the same single-text API as `edgeserve serve`:

    POST /v1/classify {"text": str, "k": int = 1}
      -> {"predictions": [{"label": str, "probability": float}, ...]}
    GET  /health      -> {"status": "ok"}

Labels lose fastText's "__label__" prefix. The handler is `async def`, so a
prediction (microseconds of C++) runs on the event loop instead of hopping to
the thread pool, the faster choice for a CPU-bound call this short.

numpy >= 2 breaks fasttext 0.9.2's FastText.predict() ("Unable to avoid copy
while creating an array"); the app therefore calls the C++ binding
model.f.predict() directly, which returns plain Python tuples and works with
every numpy (Debian 12 ships numpy 1.24, where both work).

Started by bench/server.sh as
    python3 -m uvicorn fastapi_app:app --app-dir bench/server --workers 1 \
        --host 127.0.0.1 --port P --log-level warning --no-access-log
"""

import os

import fasttext
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_PATH = os.environ["FT_MODEL"]
# fasttext prints a deprecation warning on load_model; harmless.
model = fasttext.load_model(MODEL_PATH)
PREFIX = "__label__"

app = FastAPI()


class ClassifyRequest(BaseModel):
    text: str
    k: int = 1


def predict(text: str, k: int):
    # fastText treats '\n' as the end of the input; the Python wrapper refuses
    # it, the raw binding does not: replace it like FastText.predict() would.
    text = text.replace("\n", " ") + "\n"
    out = []
    for prob, label in model.f.predict(text, k, 0.0, "strict"):
        if label.startswith(PREFIX):
            label = label[len(PREFIX):]
        out.append({"label": label, "probability": prob})
    return out


@app.post("/v1/classify")
async def classify(req: ClassifyRequest):
    return {"predictions": predict(req.text, req.k)}


@app.get("/health")
async def health():
    return {"status": "ok"}
