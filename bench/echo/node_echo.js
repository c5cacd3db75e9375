// Minimal Node.js net echo server: prints its port, echoes until killed.
const net = require("net");
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => {});  // a client that goes away is no reason to crash
  socket.pipe(socket);
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
