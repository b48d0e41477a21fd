# tests/servers/puma_app.ru - a plain Rack app for tests/integration/puma.sh,
# run by Puma (`puma -e production -w 2 -t 2:4 ... puma_app.ru`). No Rails,
# and no rack gem: Puma parses this file with its own Rack::Builder.
#
# Environment: PUMA_APP_FILE, the file /file serves; PUMA_APP_DB, the
# SQLite database of /books/ (seeded by the test; the sqlite3 gem is loaded
# only when it is set).
#
#   GET  /hello, HEAD /hello  200 "hello\n" (Content-Length)
#   GET  /items/<n>           200 JSON naming the item
#   GET  /pid                 200 the worker's pid
#   GET  /slow                200 after sleeping 400 ms (a Puma thread busy)
#   GET  /boom                an exception: Puma's own 500
#   GET  /stream              200, 3 parts, no Content-Length: Puma chunks it
#   POST /upload              200 "got N\n", N the bytes of the body read
#   GET  /file                200 PUMA_APP_FILE through a body with to_path
#                             (as Rack::Files's), Content-Length set
#   GET  /sendfile            200 PUMA_APP_FILE copied into the socket with
#                             IO.copy_stream (sendfile(2)) by a response
#                             hijack, Content-Length set; closes the connection
#   GET  /r/<name>            200 "<name>\n" (one route per name)
#   GET  /books/              200 the books and their authors' names: one
#                             SELECT of the books, one of an author per book
#   anything else             404

# A file body as Rack::Files::Iterator is: to_path for servers that send
# the file themselves, each for those that read it (Puma 5 does).
class FileBody
  def initialize(path)
    @path = path
  end

  def to_path
    @path
  end

  def each
    File.open(@path, "rb") do |f|
      while (chunk = f.read(8192))
        yield chunk
      end
    end
  end
end

# Parts yielded one by one, with no Content-Length: Puma sends them chunked.
class StreamBody
  def each
    3.times { |i| yield "part #{i}\n" }
  end
end

DB_PATH = ENV["PUMA_APP_DB"]
require "sqlite3" if DB_PATH

# A connection of its own per request, so that every request runs the
# same statements: the gem's "PRAGMA encoding" (once per connection, at its
# first statement with a bound string or number), the books, then one
# lookup per book's author (an N+1).
def books
  db = SQLite3::Database.new(DB_PATH)
  rows = db.execute("SELECT id, title, author_id FROM books ORDER BY id")
  rows.map do |id, title, author_id|
    name = db.execute("SELECT name FROM authors WHERE id = ?", [author_id]).first.first
    %({"id": #{id}, "title": "#{title}", "author": "#{name}"})
  end
ensure
  db&.close
end

def text(status, body)
  [status, { "Content-Type" => "text/plain" }, [body]]
end

run(lambda do |env|
  path = env["PATH_INFO"]
  case [env["REQUEST_METHOD"], path]
  when ["GET", "/hello"], ["HEAD", "/hello"]
    text(200, "hello\n")
  when ["GET", "/pid"]
    text(200, "#{Process.pid}\n")
  when ["GET", "/slow"]
    sleep 0.4
    text(200, "slow\n")
  when ["GET", "/boom"]
    raise "boom from the app"
  when ["GET", "/stream"]
    [200, { "Content-Type" => "text/plain" }, StreamBody.new]
  when ["POST", "/upload"]
    n = env["rack.input"].read.bytesize
    text(200, "got #{n}\n")
  when ["GET", "/file"]
    f = ENV.fetch("PUMA_APP_FILE")
    [200, { "Content-Type" => "application/octet-stream", "Content-Length" => File.size(f).to_s },
     FileBody.new(f)]
  when ["GET", "/sendfile"]
    f = ENV.fetch("PUMA_APP_FILE")
    copy = lambda do |io|
      IO.copy_stream(f, io)
    ensure
      io.close
    end
    [200, { "Content-Type" => "application/octet-stream", "Content-Length" => File.size(f).to_s,
            "rack.hijack" => copy }, []]
  when ["GET", "/books/"]
    [200, { "Content-Type" => "application/json" }, ["[#{books.join(', ')}]\n"]]
  else
    if env["REQUEST_METHOD"] == "GET" && path =~ %r{\A/items/(\d+)\z}
      [200, { "Content-Type" => "application/json" }, [%({"id": #{$1}}\n)]]
    elsif env["REQUEST_METHOD"] == "GET" && path =~ %r{\A/r/([a-z0-9-]+)\z}
      text(200, "#{$1}\n")
    else
      text(404, "not found\n")
    end
  end
end)
