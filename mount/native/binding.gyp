{
  "targets": [{
    "target_name": "herds_fuse",
    "sources": ["herds_fuse.c"],
    "cflags": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-std=gnu11"],
    "conditions": [
      ["OS=='linux'", {
        "cflags": ["<!@(pkg-config --cflags fuse3)"],
        "libraries": ["<!@(pkg-config --libs fuse3)"]
      }],
      ["OS=='mac'", {
        "cflags": ["<!@(pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/local/include/fuse3)"],
        "libraries": ["<!@(pkg-config --libs fuse3 2>/dev/null || echo -L/usr/local/lib -lfuse3)"],
        "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/local/include/fuse3)"] }
      }]
    ]
  }]
}
