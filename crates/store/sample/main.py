"""VWED Edge sample script.

Start it:  curl -X POST localhost:8000/api/script/scripts/start \
               -H 'content-type: application/json' -d '{"script_path": "sample/main.py"}'
Then try:  curl 'localhost:8000/script-api/hello?name=VWED'
"""


def boot(params):
    """Runs once at start; `params` is the start_params of the start request."""
    greeting = params.get("greeting", "Hello")
    VWED.log.sync_info("sample script starting", script_id=VWED.get_script_id())

    @VWED.api.get("/hello", description="Greets the caller")
    def hello(request_data):
        name = request_data["query_params"].get("name", "World")
        return {"message": f"{greeting}, {name}!"}

    @VWED.api.post("/process", description="Counts the items of a JSON body")
    def process(request_data):
        data = request_data["body"]
        count = len(data) if isinstance(data, list) else 1
        VWED.log.sync_info(f"processed {count} item(s)")
        total = VWED.data.get("processed_total", 0) + count
        VWED.data.set("processed_total", total)
        return {"processed": True, "count": count, "total": total, "timestamp": VWED.util.now()}

    @VWED.api.get("/robots/{robot_id}", description="Path parameters become path_params")
    def robot(request_data):
        robot_id = request_data["path_params"]["robot_id"]
        if not robot_id.startswith("AGV"):
            return VWED.api.response(404, {"error": f"unknown robot {robot_id}"})
        return {"robot_id": robot_id, "status": "idle"}

    @VWED.function.register(
        "calculate_sum",
        description="Sum of a list of numbers",
        parameters=[{"name": "numbers", "type": "array", "required": True}],
        tags=["math"],
    )
    def calculate_sum(args):
        numbers = args.get("numbers", [])
        return {"sum": sum(numbers), "count": len(numbers)}

    @VWED.function.register("area", description="Keyword arguments from a dict", tags=["math"])
    def area(width, height):
        return width * height

    @VWED.function.register("slow_echo", description="An async function")
    async def slow_echo(args):
        await VWED.util.async_sleep(0.1)
        return {"echo": args, "id": VWED.util.uuid()}

    @VWED.function.register("sum_and_area", description="Calls other registered functions")
    def sum_and_area(args):
        s = VWED.function.call("calculate_sum", {"numbers": args.get("numbers", [])})
        a = VWED.function.call("area", {"width": 2, "height": 3})
        return {"sum": s["sum"], "area": a}

    @VWED.event.listen("order_ready", priority=0)
    def on_order(event_data):
        # Emit from anywhere: another script, a timer, or
        # curl -X POST localhost:8000/api/script/events/emit -d '{"event_name": "order_ready", "data": {"order": 7}}'
        VWED.log.sync_info("order ready", order=event_data.get("order"))
        VWED.data.set("last_order", event_data)

    @VWED.timer.every(60)
    def heartbeat():
        VWED.event.emit("sample_heartbeat", {"script_id": VWED.get_script_id(), "at": VWED.util.now()})

    @VWED.timer.cron("0 * * * *")
    async def hourly():
        await VWED.log.info("hourly check", processed_total=VWED.data.get("processed_total", 0))

    VWED.log.sync_info("sample script ready")
