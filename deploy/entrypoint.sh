#!/bin/sh
# The container's entrypoint. The HDFS archive (hdrs, libhdfs over JNI) needs libjvm on the
# library path and CLASSPATH listing every Hadoop client jar one by one plus the conf dir: JNI
# does not expand `lib/*`. This builds both, then execs the binary beside this script (so it
# is PID 1 and gets SIGTERM itself). Where the jars and conf live can be moved with HADOOP_LIB and
# HADOOP_CONF_DIR (the defaults are the image's paths); JAVA_HOME is found from `java`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
HADOOP_LIB=${HADOOP_LIB:-/opt/hadoop/lib}
HADOOP_CONF_DIR=${HADOOP_CONF_DIR:-/opt/hadoop/conf}

die() { echo "entrypoint: $*" >&2; exit 1; }

if [ -z "${JAVA_HOME:-}" ]; then
  java=$(command -v java) || die "no java on PATH and JAVA_HOME unset: the HDFS client needs a JVM"
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")")
fi
[ -f "$JAVA_HOME/lib/server/libjvm.so" ] || die "no libjvm.so under $JAVA_HOME/lib/server"

classpath=$HADOOP_CONF_DIR
jars=0
for jar in "$HADOOP_LIB"/*.jar; do
  [ -f "$jar" ] || continue
  classpath="$classpath:$jar"
  jars=$((jars + 1))
done
if [ "$jars" = 0 ] && [ -n "${THERMO_HDFS_URL:-}" ]; then
  die "THERMO_HDFS_URL is set but $HADOOP_LIB holds no Hadoop client jars (set HADOOP_LIB)"
fi

export JAVA_HOME HADOOP_CONF_DIR
# -Xrs: the JVM leaves SIGTERM and SIGINT to the server. Its own handler would exit 143 at
# once, skipping the flush and offset commit of a graceful stop (`docker stop`).
export LIBHDFS_OPTS="-Xrs${LIBHDFS_OPTS:+ $LIBHDFS_OPTS}"
export CLASSPATH="$classpath${CLASSPATH:+:$CLASSPATH}"
export LD_LIBRARY_PATH="$JAVA_HOME/lib/server${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/thermoalert" "$@"
