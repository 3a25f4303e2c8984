{
  "targets": [{
    "target_name": "herds_at",
    "sources": ["herds_at.c"],
    "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"],
    "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra"] }
  }]
}
