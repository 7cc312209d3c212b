#!/usr/bin/env bash
# Copy each finished replication job's test report and run records into the repository
# (gzip -n: reproducible bytes). Enough for aggregate.py, and for a resumed run to skip the job.
D=/work/main/docs/results/multilingual-replication/jobs
mkdir -p $D
for f in /work/runs/ml-rep/seed*/*/dc_test.json; do
  dir=$(dirname $f); job=$(basename $(dirname $dir))_$(basename $dir)
  [[ -f $D/${job}_dc_test.json.gz ]] && continue
  gzip -n -c $f > $D/${job}_dc_test.json.gz
  cp $dir/dc_test.txt $D/${job}_dc_test.txt
  cp $dir/student/run.json $D/${job}_student_run.json
  cp $dir/dc/run.json $D/${job}_dc_run.json
  echo saved $job
done
grep -h "start seed\|done  seed" /work/runs/ml-rep.err | grep -v "^\[10:14" > $D/../job_log.txt
