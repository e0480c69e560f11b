"""The ceiling: a bare Starlette endpoint that reads the body and returns a constant."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def predict(request: Request) -> Response:
    await request.body()
    return Response(b'{"predictions":[0]}', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
