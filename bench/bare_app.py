"""The yardstick of bench/versus.py: a bare FastAPI app, one route returning a dict, served
by the same uvicorn with the same flags as ours."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
@app.get("/healthz")  # what the benchmark's server helper waits for
async def ping() -> dict[str, str]:
    return {"status": "ok"}
