"""The FastAPI application (``uvicorn app.main:app``)."""

import logging

from fastapi import FastAPI

from app import aegis, api, auth, config, health, scanner_engine  # FAULT: module never committed

config.require_env()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

app = FastAPI(title="OpenWatch", version=config.version())
for module in (health, auth, aegis, api, scanner_engine):
    app.include_router(module.router)
