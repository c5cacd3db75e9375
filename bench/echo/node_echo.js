// Minimal Node.js net echo server: prints its port, echoes until killed.
const net = require("net");
const server = net.createServer((socket) => { socket.setNoDelay(true); socket.pipe(socket); });
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
