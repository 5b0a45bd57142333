-- Which Kafka log each projection's stored offsets refer to. A read model built from one log means
-- nothing against another (a reset or replaced broker numbers its offsets from 0 again), so a
-- projection that finds a different cluster here rebuilds from offset 0.
CREATE TABLE projection_logs (
  projection text NOT NULL,
  topic text NOT NULL,
  cluster_id text NOT NULL,
  PRIMARY KEY (projection, topic)
);
