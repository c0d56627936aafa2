#!/bin/sh
echo cleaning up
