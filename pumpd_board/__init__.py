"""pumpd-board: the read-only nurse-station board, a web page of every chair, fed by pumpd's
control socket (docs/board.md). Its own process: it imports pumpd's control-socket client
and configuration loader, nothing of the controller, and holds no database credentials."""
