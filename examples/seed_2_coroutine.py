import treadle as asyncio

@asyncio.coroutine
def hello():
    print("Hello world!")
    # asynchronous call of asyncio.sleep(1):
    r = yield from asyncio.sleep(1)
    print("Hello again!")

loop = asyncio.get_event_loop()
loop.run_until_complete(hello())
loop.close()
