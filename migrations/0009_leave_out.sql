-- Directions a workload's policy leaves out (`ingress` or `egress`): not isolated, so every
-- connection that way is allowed (the choice for an exposed workload whose outside clients the
-- window did not show).
alter table decisions add column leave_out text[] not null default '{}';
alter table decision_history add column leave_out text[] not null default '{}';
