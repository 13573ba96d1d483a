#!/usr/bin/env bash
# Real Apache Kafka (KRaft) and Hadoop HDFS for ThermoAlert's integration tests and for local
# trials, run from Maven Central jars (no Docker, no tarballs), on loopback only.
#
#   scripts/services.sh fetch  [kafka|hdfs|all]   download the jars into the cache
#   scripts/services.sh start  [kafka|hdfs|all]   fetch if needed, start, wait until ready
#   scripts/services.sh stop   [kafka|hdfs|all]   stop (harmless when not running)
#   scripts/services.sh status [kafka|hdfs|all]   exit 0 when every named service is up
#   scripts/services.sh logs   [kafka|hdfs|all]   print the tail of each log
#   scripts/services.sh pause|resume [kafka|hdfs|all]   freeze (SIGSTOP) or thaw the processes:
#                                                 connections stay open, nothing answers
#   scripts/services.sh reset  [kafka|hdfs|all]   stop and delete the data (topics, files):
#                                                 the next start is a fresh cluster
#   scripts/services.sh env                       print CLASSPATH/LD_LIBRARY_PATH for hdrs
#
# Kafka listens on 127.0.0.1:9092 (controller 9093); the NameNode on 127.0.0.1:9000 (web 9870),
# the DataNode on 9864/9866/9867. Jars are cached in $THERMO_CACHE (default
# ~/.cache/thermoalert); data, pid files and logs live in $THERMO_SERVICES_DIR (default
# target/services of this checkout), where a failing test can print them.
set -euo pipefail

KAFKA_VERSION=4.1.2
HADOOP_VERSION=3.4.2
SLF4J_VERSION=1.7.36

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${THERMO_CACHE:-$HOME/.cache/thermoalert}
RUN=${THERMO_SERVICES_DIR:-$ROOT/target/services}
KAFKA_LIB=$CACHE/kafka-$KAFKA_VERSION/lib
HADOOP_LIB=$CACHE/hadoop-$HADOOP_VERSION/lib
READY_TIMEOUT=${THERMO_SERVICES_TIMEOUT:-120}

say() { echo "services: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH: install a JDK 17 (scripts/setup.sh does)"
}

java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME"
  else
    dirname "$(dirname "$(readlink -f "$(command -v java)")")"
  fi
}

# Writes a throwaway pom naming the artifacts, then lets Maven copy them and their runtime
# dependencies into the cache. A marker file makes the second run instant.
fetch_jars() { # <lib dir> <dependency xml>
  local lib=$1 deps=$2
  [ -f "$lib/.complete" ] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH: install Maven (scripts/setup.sh does)"
  local work
  work=$(mktemp -d)
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.thermoalert</groupId><artifactId>service-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>$deps</dependencies>
</project>
EOF
  say "fetching jars into $lib"
  rm -rf "$lib" && mkdir -p "$lib"
  (cd "$work" && mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$lib") || die "maven could not fetch the jars (see above)"
  rm -rf "$work"
  touch "$lib/.complete"
}

dep() { echo "<dependency><groupId>$1</groupId><artifactId>$2</artifactId><version>$3</version></dependency>"; }

fetch_kafka() {
  fetch_jars "$KAFKA_LIB" "$(dep org.apache.kafka kafka_2.13 $KAFKA_VERSION)$(dep org.slf4j slf4j-simple $SLF4J_VERSION)"
}

fetch_hdfs() {
  fetch_jars "$HADOOP_LIB" "$(dep org.apache.hadoop hadoop-common $HADOOP_VERSION)$(dep org.apache.hadoop hadoop-hdfs $HADOOP_VERSION)$(dep org.apache.hadoop hadoop-hdfs-client $HADOOP_VERSION)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { # <pid file>
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Refuses to start on a port someone else holds, rather than hanging until the timeout.
check_ports_free() { # <name> <ports...>
  local name=$1; shift
  for p in "$@"; do
    if port_open "$p"; then
      die "port $p is already in use by another process, so $name cannot start (find it with: ss -ltnp 'sport = :$p')"
    fi
  done
}

wait_for() { # <name> <log> <pid file> <command that succeeds when ready>
  local name=$1 log=$2 pidf=$3; shift 3
  local waited=0
  until "$@"; do
    if ! pid_alive "$pidf"; then
      say "$name exited during start-up; last lines of $log:"
      tail -n 40 "$log" >&2 || true
      exit 1
    fi
    if [ "$waited" -ge "$READY_TIMEOUT" ]; then
      say "$name not ready after ${READY_TIMEOUT}s; last lines of $log:"
      tail -n 40 "$log" >&2 || true
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "$name ready (${waited}s)"
}

# ---------------------------------------------------------------- Kafka
KAFKA_DIR=$RUN/kafka

kafka_up() { grep -q "Kafka Server started" "$KAFKA_DIR/kafka.log" 2>/dev/null && port_open 9092; }

start_kafka() {
  need_java
  mkdir -p "$KAFKA_DIR"
  if pid_alive "$KAFKA_DIR/kafka.pid"; then say "kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid"))"; return 0; fi
  check_ports_free kafka 9092 9093
  fetch_kafka
  cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
  local cp="$KAFKA_LIB/*" java_opts=(-Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true)
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$KAFKA_DIR/server.properties" \
      --ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 || { cat "$KAFKA_DIR/format.log" >&2; die "kafka storage format failed"; }
  fi
  : >"$KAFKA_DIR/kafka.log"
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >>"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_for kafka "$KAFKA_DIR/kafka.log" "$KAFKA_DIR/kafka.pid" kafka_up
}

# ---------------------------------------------------------------- HDFS
HDFS_DIR=$RUN/hdfs
HADOOP_OPENS=(-XX:+IgnoreUnrecognizedVMOptions)
for pkg in java.io java.lang java.lang.reflect java.math java.net java.text java.util \
  java.util.concurrent java.util.zip sun.security.util sun.security.x509; do
  HADOOP_OPENS+=("--add-opens=java.base/$pkg=ALL-UNNAMED")
done

write_hadoop_conf() {
  # The Maven jars lack the web apps of the tarball; the daemons only need their directories
  # on the classpath to start their HTTP servers (JMX, used for the readiness check).
  mkdir -p "$HDFS_DIR/conf/webapps/hdfs" "$HDFS_DIR/conf/webapps/datanode" "$HDFS_DIR/conf/webapps/static"
  cat >"$HDFS_DIR/conf/core-site.xml" <<EOF
<?xml version="1.0"?>
<configuration>
  <property><name>fs.defaultFS</name><value>hdfs://127.0.0.1:9000</value></property>
  <property><name>hadoop.tmp.dir</name><value>$HDFS_DIR/tmp</value></property>
</configuration>
EOF
  cat >"$HDFS_DIR/conf/hdfs-site.xml" <<EOF
<?xml version="1.0"?>
<configuration>
  <property><name>dfs.replication</name><value>1</value></property>
  <property><name>dfs.namenode.name.dir</name><value>$HDFS_DIR/name</value></property>
  <property><name>dfs.datanode.data.dir</name><value>$HDFS_DIR/data</value></property>
  <property><name>dfs.permissions.enabled</name><value>false</value></property>
  <property><name>dfs.namenode.rpc-address</name><value>127.0.0.1:9000</value></property>
  <property><name>dfs.namenode.http-address</name><value>127.0.0.1:9870</value></property>
  <property><name>dfs.datanode.address</name><value>127.0.0.1:9866</value></property>
  <property><name>dfs.datanode.http.address</name><value>127.0.0.1:9864</value></property>
  <property><name>dfs.datanode.ipc.address</name><value>127.0.0.1:9867</value></property>
  <property><name>dfs.datanode.hostname</name><value>127.0.0.1</value></property>
  <property><name>dfs.namenode.datanode.registration.ip-hostname-check</name><value>false</value></property>
  <property><name>dfs.namenode.safemode.extension</name><value>0</value></property>
  <property><name>dfs.client.use.datanode.hostname</name><value>true</value></property>
  <property><name>dfs.client.block.write.replace-datanode-on-failure.enable</name><value>false</value></property>
</configuration>
EOF
  cat >"$HDFS_DIR/conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
EOF
}

hdfs_cp() { echo "$HDFS_DIR/conf:$HADOOP_LIB/*"; }

hdfs_java() { # <main class> [args...]
  java -Xmx512m "${HADOOP_OPENS[@]}" -Dhadoop.log.dir="$HDFS_DIR" -Dhadoop.home.dir="$HDFS_DIR" \
    -cp "$(hdfs_cp)" "$@"
}

hdfs_daemon() { # <name> <main class>
  : >"$HDFS_DIR/$1.log"
  nohup java -Xmx512m "${HADOOP_OPENS[@]}" -Dhadoop.log.dir="$HDFS_DIR" -Dhadoop.home.dir="$HDFS_DIR" \
    -cp "$(hdfs_cp)" "$2" >>"$HDFS_DIR/$1.log" 2>&1 </dev/null &
  echo $! >"$HDFS_DIR/$1.pid"
}

hdfs_up() {
  curl -fsS "http://127.0.0.1:9870/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState" 2>/dev/null \
    | grep -Eq '"NumLiveDataNodes" *: *[1-9]' \
    && curl -fsS "http://127.0.0.1:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo" 2>/dev/null \
    | grep -q '"Safemode" *: *""'
}

start_hdfs() {
  need_java
  mkdir -p "$HDFS_DIR"
  if pid_alive "$HDFS_DIR/namenode.pid" && pid_alive "$HDFS_DIR/datanode.pid"; then
    say "hdfs already running (namenode pid $(cat "$HDFS_DIR/namenode.pid"))"; return 0
  fi
  stop_hdfs quiet
  check_ports_free hdfs 9000 9870 9864 9866 9867
  fetch_hdfs
  write_hadoop_conf
  if [ ! -f "$HDFS_DIR/name/current/VERSION" ]; then
    hdfs_java org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive \
      -clusterid thermoalert-test >"$HDFS_DIR/format.log" 2>&1 || { tail -n 40 "$HDFS_DIR/format.log" >&2; die "namenode format failed"; }
  fi
  hdfs_daemon namenode org.apache.hadoop.hdfs.server.namenode.NameNode
  hdfs_daemon datanode org.apache.hadoop.hdfs.server.datanode.DataNode
  wait_for hdfs "$HDFS_DIR/namenode.log" "$HDFS_DIR/namenode.pid" hdfs_up
}

# ---------------------------------------------------------------- stop / status / logs
stop_pid() { # <name> <pid file>
  local name=$1 pidf=$2
  if ! pid_alive "$pidf"; then rm -f "$pidf"; return 1; fi
  local pid
  pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 30s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
  say "$name stopped"
}

stop_kafka() { stop_pid kafka "$KAFKA_DIR/kafka.pid" || [ "${1:-}" = quiet ] || say "kafka was not running"; }

stop_hdfs() {
  local any=0
  stop_pid datanode "$HDFS_DIR/datanode.pid" && any=1
  stop_pid namenode "$HDFS_DIR/namenode.pid" && any=1
  [ "$any" = 1 ] || [ "${1:-}" = quiet ] || say "hdfs was not running"
}

reset_kafka() { stop_kafka quiet; rm -rf "$KAFKA_DIR/data"; say "kafka data deleted"; }
reset_hdfs() { stop_hdfs quiet; rm -rf "$HDFS_DIR/data" "$HDFS_DIR/name"; say "hdfs data deleted"; }

signal_pids() { # <signal> <pid file>...
  local sig=$1 pidf; shift
  for pidf in "$@"; do
    pid_alive "$pidf" || die "$(basename "$pidf" .pid) is not running"
    kill "-$sig" "$(cat "$pidf")"
  done
}
pause_kafka() { signal_pids STOP "$KAFKA_DIR/kafka.pid"; }
resume_kafka() { signal_pids CONT "$KAFKA_DIR/kafka.pid"; }
pause_hdfs() { signal_pids STOP "$HDFS_DIR/namenode.pid" "$HDFS_DIR/datanode.pid"; }
resume_hdfs() { signal_pids CONT "$HDFS_DIR/namenode.pid" "$HDFS_DIR/datanode.pid"; }

status_kafka() { if kafka_up; then say "kafka up on 127.0.0.1:9092"; else say "kafka down"; return 1; fi; }
status_hdfs() { if hdfs_up; then say "hdfs up on hdfs://127.0.0.1:9000"; else say "hdfs down"; return 1; fi; }

logs_kafka() { echo "==> $KAFKA_DIR/kafka.log"; tail -n "${LINES_TAIL:-60}" "$KAFKA_DIR/kafka.log" 2>/dev/null || echo "(none)"; }
logs_hdfs() {
  for f in namenode datanode; do
    echo "==> $HDFS_DIR/$f.log"; tail -n "${LINES_TAIL:-60}" "$HDFS_DIR/$f.log" 2>/dev/null || echo "(none)"
  done
}

# What a process using hdrs (libhdfs over JNI) needs: libjvm on the library path and every
# Hadoop client jar listed one by one (JNI does not expand `lib/*`), plus the conf dir.
print_env() {
  fetch_hdfs
  write_hadoop_conf
  local jh jars
  jh=$(java_home)
  jars=$(find "$HADOOP_LIB" -name '*.jar' | sort | tr '\n' ':')
  echo "export JAVA_HOME='$jh'"
  echo "export LD_LIBRARY_PATH='$jh/lib/server'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  echo "export CLASSPATH='$HDFS_DIR/conf:${jars%:}'"
}

action=${1:-}
target=${2:-all}
case "$target" in kafka | hdfs | all) ;; *) die "unknown service '$target' (kafka, hdfs or all)" ;; esac
each() { # <verb>
  local rc=0
  if [ "$target" = kafka ] || [ "$target" = all ]; then "$1_kafka" || rc=1; fi
  if [ "$target" = hdfs ] || [ "$target" = all ]; then "$1_hdfs" || rc=1; fi
  return $rc
}
case "$action" in
  fetch) each fetch ;;
  start) each start ;;
  stop) each stop ;;
  reset) each reset ;;
  status) each status ;;
  logs) each logs ;;
  pause) each pause ;;
  resume) each resume ;;
  env) print_env ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
